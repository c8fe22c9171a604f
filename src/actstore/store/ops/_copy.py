"""``actstore copy``: a full or subset copy of a cache, to a directory, URL or single ``.zip``."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from zarr.buffer import default_buffer_prototype

from actstore._locations import location_errors
from actstore._progress import Progress
from actstore.errors import (
    IncompleteCacheError,
    InvalidArgumentError,
    UnknownNameError,
    UnsafeCacheError,
)
from actstore.store.core._cache import Cache
from actstore.store.core._consolidated import deferred
from actstore.store.core._entry import create_cache, open_cache
from actstore.store.core._positions import copy_positions
from actstore.store.format._layers import layer_list
from actstore.store.format._safety import check_key
from actstore.store.format._schema import (
    ATTR_KEY,
    DONE_ARRAY,
    METADATA_VARS,
    PromptSetMetadata,
    PromptSetSpec,
)
from actstore.store.format._storage import is_local, is_zip, make_store, normalize_url
from actstore.store.format._walk import array_dims
from actstore.store.format._zarr import sync

__all__ = ["CopyReport", "copy_cache"]


@dataclass(frozen=True, kw_only=True)
class CopyReport:
    """What :func:`copy_cache` wrote: ``prompt set -> (n_prompts, layers, blocks written)``."""

    src: str
    dst: str
    prompt_sets: dict[str, tuple[int, tuple[int, ...], int]]


def _select_prompts(n: int, prompts: Sequence[int] | slice | None) -> np.ndarray:
    """Prompt indices to copy, in order; negative indices count from the end (``-1``: last)."""
    if prompts is None:
        return np.arange(n)
    if isinstance(prompts, slice):
        idx = np.arange(n)[prompts]
    else:
        idx = np.asarray(list(prompts), dtype=np.int64)
        bad = idx[(idx < -n) | (idx >= n)]
        if bad.size:
            raise UnknownNameError(
                f"expected prompt indices in [-{n}, {n}), got {bad[:5].tolist()}; check --prompts"
            )
        idx = np.where(idx < 0, idx + n, idx)
        uniq, counts = np.unique(idx, return_counts=True)
        if (counts > 1).any():
            raise InvalidArgumentError(
                f"expected distinct prompts, got {uniq[counts > 1][:5].tolist()} more than once "
                "(negative indices count from the end); list each prompt once"
            )
    if idx.size == 0:
        raise InvalidArgumentError(f"expected at least one prompt selected out of {n}, got none")
    return idx


def copy_cache(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    layers: Sequence[int] | None = None,
    prompt_sets: Sequence[str] | None = None,
    prompts: Sequence[int] | slice | None = None,
    storage_options: dict[str, Any] | None = None,
    dst_storage_options: dict[str, Any] | None = None,
) -> CopyReport:
    """Copy the cache at *src* to *dst* (a new path, URL, or a ``.zip`` file), optionally a subset.

    Parameters
    ----------
    src, dst
        Source cache (directory, ``.zip`` or fsspec URL) and a new destination; a *dst* ending
        in ``.zip`` writes a zip file.
    layers
        Real layer indices to keep (default all); every copied prompt set must have them.
    prompt_sets
        Prompt sets to copy (default all). Other groups (``probes/...``) are always copied.
    prompts
        Prompt indices (a list or a slice) to keep in every copied prompt set (default all).
    storage_options, dst_storage_options
        fsspec options for a remote *src* and *dst*.

    Returns
    -------
    CopyReport
        Per copied prompt set: ``(n_prompts, layers, blocks written)``.

    Raises
    ------
    StoreNotFoundError, NotACacheError, UnsafeCacheError
        A source that is missing, not a cache, or unsafe to open.
    InvalidArgumentError
        A destination that already holds something, a layer, prompt or prompt set the source
        does not have (checked before anything is written).
    IncompleteCacheError
        A prompt set whose creation was interrupted, named in *prompt_sets*.

    Notes
    -----
    Blocks missing in the source stay missing in the copy (only prompts of complete source blocks
    are copied and recorded). Derived variables are subset along ``prompt`` and ``layer``.
    A subset renumbers its prompts from 0 and keeps each one's index in the original cache as the
    ``source_prompt`` coordinate (composed through subsets of subsets); its provenance
    ``subset_of`` names the source, the copied prompts and layers and the source's layers.
    """
    layers = layer_list(layers)  # numpy arrays too; a string is refused, not read per character
    source = open_cache(src, mode="r", storage_options=storage_options)
    _refuse_links(source.url)
    dst = normalize_url(dst)
    if prompt_sets is None:  # sets whose creation was interrupted have nothing to copy
        names = [n for n in source.prompt_sets if source.set_info(n).get("ready")]
    else:
        names = list(prompt_sets)
    for name in names:
        if name in source.prompt_sets and not source.set_info(name).get("ready"):
            raise IncompleteCacheError(
                f"expected prompt set {name!r} to be created, got one interrupted during "
                "creation; finish the extraction first or leave it out of --prompt-sets"
            )
        source.check_readable(name)  # damaged metadata is named before anything is written
        _selection(source, name, layers, prompts)  # every error before anything is written
    with location_errors(dst, f"copy {source.url!r} to"):
        if is_zip(dst):
            return _copy_to_zip(source, dst, names, layers, prompts)
        _check_new_destination(dst, dst_storage_options)
        target = create_cache(
            dst, provenance=source.attrs.get("provenance"), storage_options=dst_storage_options
        )
        with deferred(target):  # consolidated once, at the end
            report = {name: _copy_set(source, target, name, layers, prompts) for name in names}
            for gname, _group in source.root.groups():
                if gname not in source.prompt_sets:
                    _copy_group_keys(source, target, gname)
    return CopyReport(src=source.url, dst=dst, prompt_sets=report)


def _refuse_links(url: str) -> None:
    """A local source directory must not contain symbolic links: copy would follow them and put
    files from outside the cache (``/etc/...``, another user's data) into the destination."""
    if not is_local(url) or is_zip(url):
        return
    root = Path(url)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if path.is_symlink():
                raise UnsafeCacheError(
                    f"expected a cache directory without symbolic links, got "
                    f"{path.relative_to(root).as_posix()} -> {os.readlink(path)} in {url!r}; "
                    "copy never follows links (they can point outside the cache): replace them "
                    "with the files they point to (e.g. `cp -rL`) if you trust them"
                )


def _check_new_destination(dst: str, storage_options: dict[str, Any] | None) -> None:
    if is_local(dst):
        if os.path.exists(dst) and (not os.path.isdir(dst) or os.listdir(dst)):
            raise InvalidArgumentError(
                f"expected a new destination, got existing {dst!r}; remove it or pick a new path"
            )
        return
    store = make_store(dst, read_only=True, storage_options=storage_options)

    async def first_key() -> str | None:
        async for key in store.list():
            return str(key)
        return None

    first = sync(first_key())  # like a directory: any object there, not only a cache's root
    if first is not None:
        what = "an existing cache" if sync(store.exists("zarr.json")) else f"objects ({first!r})"
        raise InvalidArgumentError(
            f"expected a new destination, got {what} at {dst!r}; pick a new URL"
        )


def _copy_to_zip(
    source: Cache,
    dst: str,
    names: list[str],
    layers: Sequence[int] | None,
    prompts: Sequence[int] | slice | None,
) -> CopyReport:
    if os.path.exists(dst):
        raise InvalidArgumentError(f"expected a new .zip path, got existing {dst!r}; remove it")
    parent = Path(dst).resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=".actstore-copy-", dir=parent))
    try:
        inner = copy_cache(
            source.url,
            tmp / "cache.zarr",
            layers=layers,
            prompt_sets=names,
            prompts=prompts,
            storage_options=source.storage_options,
        )
        partial = Path(f"{dst}.partial")
        root = tmp / "cache.zarr"
        # chunks are compressed already: store them as-is; zarr reads a zip without extracting it
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(root).as_posix())
        os.replace(partial, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return CopyReport(src=source.url, dst=dst, prompt_sets=inner.prompt_sets)


def _selection(
    source: Cache, name: str, layers: Sequence[int] | None, prompts: Sequence[int] | slice | None
) -> tuple[np.ndarray, np.ndarray]:
    """Layer positions and prompt indices to copy (errors name what does not exist)."""
    spec = source.spec(name)
    if layers is None:
        layer_idx = np.arange(len(spec.layers))
    else:
        missing = [la for la in layers if la not in spec.layers]
        if missing or len(set(layers)) != len(layers) or not layers:
            raise UnknownNameError(
                f"expected distinct layers of prompt set {name!r} (from {list(spec.layers)}), "
                f"got {list(layers)}; pick stored layers"
            )
        layer_idx = np.asarray([spec.layers.index(la) for la in layers])
    return layer_idx, _select_prompts(spec.n_prompts, prompts)


def _copy_set(
    source: Cache,
    target: Cache,
    name: str,
    layers: Sequence[int] | None,
    prompts: Sequence[int] | slice | None,
) -> tuple[int, tuple[int, ...], int]:
    spec = source.spec(name)
    group = source.group(name)
    layer_idx, sel = _selection(source, name, layers, prompts)
    full = layers is None and prompts is None
    arrays = {k: arr for k, arr in group.arrays()}
    new_layers = tuple(spec.layers[i] for i in layer_idx)
    provenance = dict(spec.provenance)
    if not full:
        subset = {
            "url": source.url,
            "prompts": sel.tolist(),
            "layers": list(new_layers),
            "source_layers": list(spec.layers),
            "source_n_prompts": spec.n_prompts,
        }
        if "subset_of" in provenance:  # a subset of a subset: keep the chain
            subset["source_subset_of"] = provenance["subset_of"]
        provenance["subset_of"] = subset
    origin = _source_prompts(arrays, spec)
    if not full:
        origin = (np.arange(spec.n_prompts) if origin is None else origin)[sel]
    new_spec = PromptSetSpec(
        n_prompts=int(sel.size),
        n_tokens_max=spec.n_tokens_max,
        layers=new_layers,
        d_model=spec.d_model,
        dtype=spec.dtype,
        hooks=spec.hooks,
        block_size=spec.block_size if full else None,
        fingerprint=spec.fingerprint,
        provenance=provenance,
        codec=spec.codec,  # the copy keeps the source's --codec (resume/extend it with the same)
    )
    spans = [str(s) for s in np.asarray(arrays["span"][:])]
    span_mask = np.asarray(arrays["span_mask"].oindex[sel])
    labels = {
        k: np.asarray(a.oindex[sel])
        for k, a in arrays.items()
        if k not in METADATA_VARS
        and k not in spec.hooks
        and k != DONE_ARRAY
        and array_dims(a) == ("prompt",)
        and ATTR_KEY not in a.attrs
    }
    metadata = PromptSetMetadata(
        text=[str(t) for t in np.asarray(arrays["text"].oindex[sel])],
        n_tokens=np.asarray(arrays["n_tokens"].oindex[sel]),
        token_id=np.asarray(arrays["token_id"].oindex[sel]),
        token_str=np.asarray(arrays["token_str"].oindex[sel]).astype(object),
        labels={k: (v.astype(object) if v.dtype.kind in "OTU" else v) for k, v in labels.items()},
        span_masks={s: span_mask[:, i, :] for i, s in enumerate(spans)},
        source_prompt=origin,
        is_generated=(
            np.asarray(arrays["is_generated"].oindex[sel]) if "is_generated" in arrays else None
        ),
    )
    writer = target.prompt_set_writer(name, new_spec, metadata)
    src_block = source.set_info(name)["layout"]["block_size"]
    src_missing = set(source.missing_blocks(name))
    written = 0
    with Progress(f"copy {name}", writer.n_blocks, "blocks") as bar:
        for b in range(writer.n_blocks):
            bar.update()
            start, stop = writer.block_range(b)
            rows = sel[start:stop]
            if any(int(r) // src_block in src_missing for r in rows):
                continue
            data = {h: np.asarray(arrays[h].oindex[rows, layer_idx]) for h in spec.hooks}
            writer.write_block(b, data)
            written += 1
    for k, a in arrays.items():
        if ATTR_KEY in a.attrs and a.attrs[ATTR_KEY].get("kind") == "derived":
            dims = array_dims(a)
            idx = tuple(
                sel if d == "prompt" else layer_idx if d == "layer" else slice(None) for d in dims
            )
            target.write_derived(
                name,
                k,
                np.asarray(a.oindex[idx]),
                dims=dims,
                attrs=a.attrs[ATTR_KEY].get("lineage"),
            )
    copy_positions(source, target, name)  # re-derived from the copy's own activations
    return int(sel.size), new_spec.layers, written


def _source_prompts(arrays: dict[str, Any], spec: PromptSetSpec) -> np.ndarray | None:
    """Each prompt's index in the original cache when the set is itself a subset, else None.

    From ``source_prompt``; a subset written before that coordinate existed has only its
    provenance's ``subset_of.prompts`` (indices into its own source), which is used instead.
    """
    if "source_prompt" in arrays:
        return np.asarray(arrays["source_prompt"][:], dtype=np.int64)
    older = spec.provenance.get("subset_of")
    prompts = older.get("prompts") if isinstance(older, dict) else None
    if isinstance(prompts, list) and len(prompts) == spec.n_prompts:
        return np.asarray(prompts, dtype=np.int64)
    return None


def _copy_group_keys(source: Cache, target: Cache, prefix: str) -> None:
    """Copy a non-prompt-set group (e.g. ``probes``) object by object, bytes unchanged."""

    async def run() -> None:
        proto = default_buffer_prototype()
        keys = [check_key(k) async for k in source.store.list_prefix(f"{prefix}/")]
        for key in keys:  # every key is checked before the first is written
            buf = await source.store.get(key, prototype=proto)
            if buf is not None:
                await target.store.set(key, buf)

    sync(run())
