"""Create a prompt set and write its activations block by block, exactly once per block."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from actstore.errors import (
    DiskFullError,
    FingerprintMismatchError,
    IncompleteCacheError,
    InvalidArgumentError,
    ReadOnlyError,
    UnknownNameError,
)
from actstore.store.core import _chunkcodec
from actstore.store.core._arrays import open_or_create_group, require_array
from actstore.store.core._shardio import ShardBuffers, ShardPlan, shard_plan
from actstore.store.format._codecs import codec_compressors, parse_codec
from actstore.store.format._dtype import BFLOAT16
from actstore.store.format._enospc import disk_full_as_error, is_disk_full
from actstore.store.format._layout import Layout
from actstore.store.format._partial import clear_block, remove_block_partials, remove_partials
from actstore.store.format._schema import (
    ACT_DIMS,
    ATTR_KEY,
    DONE_ARRAY,
    PROBES_GROUP,
    PromptSetMetadata,
    PromptSetSpec,
    _check_name,
    compare_specs,
    spec_from_json,
    spec_to_json,
)
from actstore.store.format._storage import creation_lock
from actstore.store.format._zarr import unwrap_store

if TYPE_CHECKING:
    from actstore.store.core._handle import CacheHandle

__all__ = ["PromptSetWriter", "numpy_dtype", "open_writer"]

#: Semantics of the hook points, stored as each activation array's attributes.
HOOK_DOCS = {
    "resid_post": "output of decoder block `layer` (residual stream), before the final norm",
    "resid_mid": "residual stream after attention, before the MLP of block `layer`",
    "resid_pre": "input of decoder block `layer`",
}


def numpy_dtype(name: str) -> np.dtype[Any]:
    """The in-memory numpy dtype of a store dtype name (``ml_dtypes.bfloat16`` for bfloat16)."""
    return BFLOAT16 if name == "bfloat16" else np.dtype(name)


class PromptSetWriter:
    """Writes one prompt set's activations, one whole shard (block of prompts) at a time.

    Attributes
    ----------
    name : str
    spec : PromptSetSpec
        The stored spec (``block_size`` resolved).
    block_size : int
        Prompts per block (= per shard).
    n_blocks : int
    """

    def __init__(self, cache: CacheHandle, name: str, spec: PromptSetSpec, layout: Layout) -> None:
        self.cache = cache
        self.name = name
        self.spec = spec
        self.layout = layout
        self.block_size = layout.block_size
        self.n_blocks = layout.n_blocks
        group = cache.root[name]
        self._arrays: dict[str, zarr.Array] = {h: group[h] for h in spec.hooks}  # type: ignore[misc]
        self._done: zarr.Array = group[DONE_ARRAY]  # type: ignore[assignment]
        self._plans: dict[str, ShardPlan | None] = {}
        self._scratch = ShardBuffers()  # per hook, reused from block to block (local only)
        self._root: Path | None = None  # the directory of a writable local store

    def __repr__(self) -> str:
        return (
            f"<PromptSetWriter {self.name!r} blocks={self.n_blocks} block_size={self.block_size} "
            f"missing={len(self.missing_blocks())}>"
        )

    def block_range(self, b: int) -> tuple[int, int]:
        """``[start, stop)`` prompt indices of block *b*."""
        if isinstance(b, bool) or not isinstance(b, int | np.integer) or not 0 <= b < self.n_blocks:
            raise InvalidArgumentError(
                f"expected a block index in [0, {self.n_blocks}), got {b!r}; see missing_blocks()"
            )
        start = int(b) * self.block_size
        return start, min(start + self.block_size, self.spec.n_prompts)

    def write_block(
        self,
        b: int,
        activations: Mapping[str, np.ndarray],
        prepare: Callable[[str, np.ndarray, tuple[slice, ...]], None] | None = None,
    ) -> None:
        """Write block *b* of every hook, whole, then record its completion.

        Parameters
        ----------
        b
            Block index, ``0 <= b < n_blocks``.
        activations
            ``hook -> array (stop - start, layer, token, d_model)`` in the spec dtype
            (``ml_dtypes.bfloat16`` for bfloat16), one entry per hook of the spec. Any strides;
            stored layer-major (the transposed view of a ``(layer, prompt, token, d_model)``
            buffer, as ``extract`` fills) each inner chunk is compressed where it lies.
        prepare
            Optional ``prepare(hook, region, index)``, called on every part of the block before
            it is encoded: ``region = activations[hook][index]`` (a view it may modify in place,
            e.g. zero padding). On a local cache the parts are inner chunks, prepared and encoded
            in parallel on the encode pool (docs/write-path.md); elsewhere the whole array. If it
            raises, nothing of the block is written.

        Notes
        -----
        Completion is recorded only after every shard write returned, so a crash at any moment
        leaves the block missing (it is rewritten on resume) or complete, never half-recorded.
        """
        start, stop = self.block_range(b)
        spec = self.spec
        if set(activations) != set(spec.hooks):
            raise InvalidArgumentError(
                f"expected activations for hooks {sorted(spec.hooks)}, got {sorted(activations)}"
            )
        want_shape = (stop - start, len(spec.layers), spec.n_tokens_max, spec.d_model)
        want_dtype = numpy_dtype(spec.dtype)
        arrays = {}
        for hook, arr in activations.items():
            arr = np.asarray(arr)
            if arr.shape != want_shape:
                raise InvalidArgumentError(
                    f"expected {hook} block {b} of shape {want_shape} (prompt, layer, token, "
                    f"d_model), got {arr.shape}; pad tokens to n_tokens_max={spec.n_tokens_max}"
                )
            if arr.dtype != want_dtype:
                raise InvalidArgumentError(
                    f"expected {hook} activations of dtype {spec.dtype}, got {arr.dtype}; cast "
                    f"them (ml_dtypes.bfloat16 for bfloat16) or create the set with that dtype"
                )
            arrays[hook] = arr
        # A write of this block killed earlier may have left temporary files or a torn shard
        # (on stores without atomic puts). The block is unrecorded, so whatever is there is
        # garbage, and zarr's shard writer would read (and choke on) an existing shard first.
        remove_block_partials(self.cache.url, self.name, list(arrays), b)
        clear_block(self.cache.store, self.name, list(arrays), b)
        try:
            plans = {h: self._plan(h) for h in arrays}
            if all(p is not None for p in plans.values()):
                self._write_fast(b, arrays, plans, prepare)  # type: ignore[arg-type]
            else:
                for hook, arr in arrays.items():
                    if prepare is not None:
                        prepare(hook, arr, tuple(slice(0, n) for n in arr.shape))
                for hook, arr in arrays.items():
                    # a shard-aligned slice: zarr encodes and stores the whole shard in one put
                    self._arrays[hook][start:stop] = arr
            self._done[b] = 1
        except PermissionError as exc:
            raise ReadOnlyError(
                f"expected a writable cache location, got {exc}; fix the permissions or copy "
                "the cache somewhere writable"
            ) from exc
        except OSError as exc:
            if not is_disk_full(exc):  # ENOSPC, or EDQUOT (a cluster's quota)
                raise
            raise DiskFullError(
                f"expected free space in {self.cache.url!r} to write block {b} of {self.name!r}, "
                "got a full disk or quota; free space and re-run the same command: the block is "
                "not recorded, so resume rewrites it"
            ) from exc

    def _plan(self, hook: str) -> ShardPlan | None:
        if hook not in self._plans:
            from zarr.storage import LocalStore

            # the raw store under actstore's metadata layer
            raw = unwrap_store(self.cache.store)
            if isinstance(raw, LocalStore) and not raw.read_only:
                self._root = Path(raw.root)
            self._plans[hook] = shard_plan(self._arrays[hook])
        return self._plans[hook]

    def _write_fast(
        self,
        b: int,
        arrays: dict[str, np.ndarray],
        plans: dict[str, ShardPlan],
        prepare: Callable[[str, np.ndarray, tuple[slice, ...]], None] | None,
    ) -> None:
        """Encode every hook's shard on the encode pool first (so a refusing ``prepare`` leaves
        nothing written), then store each: on a local directory its pieces straight into the
        shard file (``.partial`` then rename, as zarr's LocalStore), elsewhere one ``set``."""
        from zarr.buffer import default_buffer_prototype

        from actstore.store.format._zarr import sync

        coords = (b, 0, 0, 0)
        encoded = {}
        try:
            for hook, arr in arrays.items():
                hook_prepare = None if prepare is None else functools.partial(prepare, hook)
                scratch = self._scratch.take(hook) if self._root is not None else None
                # any strides: contiguous chunks (layer-major blocks) are compressed in place
                encoded[hook] = plans[hook].encode_shard(
                    coords, arr, prepare=hook_prepare, scratch=scratch
                )
            for hook, shard in encoded.items():
                key = plans[hook].shard_key(coords)
                if self._root is not None:
                    _chunkcodec.write_file(self._root, key, shard.pieces)
                else:
                    blob = default_buffer_prototype().buffer.from_array_like(shard.joined())
                    sync(self.cache.store.set(key, blob))
        finally:
            if self._root is not None:  # the pieces are in the file (or abandoned): reuse
                for hook, shard in encoded.items():
                    self._scratch.give(hook, shard.buffer)

    def missing_blocks(self) -> list[int]:
        """Blocks whose completion is not recorded (what a resuming job still has to write)."""
        from actstore.store.format._markers import missing_from_listing

        return missing_from_listing(self.cache.store, self.name, self.n_blocks)

    def is_complete(self) -> bool:
        """True when every block is recorded."""
        return not self.missing_blocks()


def open_writer(
    cache: CacheHandle,
    name: str,
    spec: PromptSetSpec | None,
    metadata: PromptSetMetadata | None,
) -> PromptSetWriter:
    """Implementation of :meth:`Cache.prompt_set_writer`."""
    _check_name("prompt set", name)
    if name == PROBES_GROUP:
        raise InvalidArgumentError(
            f"expected a prompt-set name, got the reserved group name {PROBES_GROUP!r}; rename it"
        )
    with creation_lock(cache.url), disk_full_as_error(cache.url, f"creating prompt set {name!r}"):
        return _open_writer_locked(cache, name, spec, metadata)


def _open_writer_locked(
    cache: CacheHandle,
    name: str,
    spec: PromptSetSpec | None,
    metadata: PromptSetMetadata | None,
) -> PromptSetWriter:
    info = _stored_info(cache, name)
    if info is not None:
        stored = spec_from_json(info["spec"])
        if spec is not None:
            compare_specs(name, stored, spec)
        if info.get("ready"):
            return PromptSetWriter(cache, name, stored, Layout(**info["layout"]))
        if metadata is None:
            raise IncompleteCacheError(
                f"expected prompt set {name!r} to be fully created, got one interrupted during "
                "creation; pass its spec and metadata again to finish creating it"
            )
        spec = stored
    elif spec is None or metadata is None:
        raise UnknownNameError(
            f"expected an existing prompt set (one of {cache.prompt_sets}), got {name!r}; pass "
            "spec and metadata to create it"
        )
    if not isinstance(metadata, PromptSetMetadata) or not isinstance(spec, PromptSetSpec):
        raise InvalidArgumentError(
            f"expected PromptSetSpec and PromptSetMetadata, got {type(spec).__name__} and "
            f"{type(metadata).__name__}"
        )
    arrays = metadata.checked(spec)  # validate everything before the first byte is written
    # a creation killed mid-write left temporary files: nothing else writes here before "ready"
    remove_partials(cache.url, name)
    remove_partials(cache.url, recursive=False)
    layout = spec.layout()
    spec = dataclasses.replace(spec, block_size=layout.block_size, codec=parse_codec(spec.codec))
    set_info = {
        "kind": "prompt_set",
        "spec": spec_to_json(spec),
        "layout": dataclasses.asdict(layout),
        "spans": [str(s) for s in arrays["span"]],  # the span index without reading it
        "ready": False,
    }
    group = open_or_create_group(cache.store, name)
    if ATTR_KEY not in group.attrs:
        group.attrs[ATTR_KEY] = set_info
    # a concurrent creator may have won the race with another spec: compare what is stored now
    stored_now = zarr.open_group(store=cache.store, path=name, mode="r+").attrs[ATTR_KEY]
    compare_specs(name, spec_from_json(stored_now["spec"]), spec)
    if stored_now["layout"] != set_info["layout"]:
        raise FingerprintMismatchError(
            f"prompt set {name!r}: layout differs from the stored one: expected "
            f"{stored_now['layout']}, got {set_info['layout']}; pass the stored block_size"
        )
    _create_arrays(group, spec, layout, arrays)
    set_info["ready"] = True
    group.attrs[ATTR_KEY] = set_info
    return PromptSetWriter(cache, name, spec, layout)


def _stored_info(cache: CacheHandle, name: str) -> dict[str, Any] | None:
    try:
        group = zarr.open_group(store=cache.store, path=name, mode="r")
    except (FileNotFoundError, ValueError):
        return None
    info = group.attrs.get(ATTR_KEY)
    return dict(info) if isinstance(info, Mapping) and "spec" in info else None


def _create_arrays(
    group: zarr.Group, spec: PromptSetSpec, layout: Layout, meta: dict[str, np.ndarray]
) -> None:
    p, t = spec.n_prompts, spec.n_tokens_max
    for hook in spec.hooks:
        require_array(group, hook, **bookkeeping_array_args(spec, layout, hook))
    done = require_array(group, DONE_ARRAY, **bookkeeping_array_args(spec, layout, DONE_ARRAY))
    coords = {
        "prompt": (np.arange(p, dtype=np.int64), ("prompt",)),
        "layer": (np.asarray(spec.layers, dtype=np.int32), ("layer",)),
        "token": (np.arange(t, dtype=np.int32), ("token",)),
        "span": (meta.pop("span"), ("span",)),
    }
    dims_of = {"token_id": ("prompt", "token"), "token_str": ("prompt", "token")}
    dims_of["span_mask"] = ("prompt", "span", "token")
    dims_of["is_generated"] = ("prompt", "token")
    for name, (values, dims) in coords.items():
        _write_meta(group, name, values, dims, layout.read_prompts)
    for name, values in meta.items():
        _write_meta(group, name, values, dims_of.get(name, ("prompt",)), layout.read_prompts)
    if "source_prompt" in meta:  # CF convention: xr.open_zarr reads it as a coordinate
        group.attrs["coordinates"] = "source_prompt"
    del done  # created last among the bookkeeping; zeros (fill) mean "not written"


def bookkeeping_array_args(spec: PromptSetSpec, layout: Layout, name: str) -> dict[str, Any]:
    """``require_array`` arguments of a hook array or of the completion-marker array.

    Their metadata follows from the spec and layout alone, so ``actstore repair`` can rewrite a
    damaged ``zarr.json`` of either exactly as it was created.
    """
    if name == DONE_ARRAY:
        return {"shape": (layout.n_blocks,), "dtype": "uint8", "chunks": (1,), "dims": ("block",)}
    t, n_layers = spec.n_tokens_max, len(spec.layers)
    return {
        "shape": (spec.n_prompts, n_layers, t, spec.d_model),
        "dtype": numpy_dtype(spec.dtype),
        "chunks": layout.chunk_shape(t, spec.d_model),
        "shards": layout.shard_shape(n_layers, t, spec.d_model),
        "compressors": codec_compressors(spec.codec),
        "dims": ACT_DIMS,
        "fill_value": 0,
        "attributes": {"hook": name, "description": HOOK_DOCS.get(name, name)},
    }


def _write_meta(
    group: zarr.Group, name: str, values: np.ndarray, dims: tuple[str, ...], read_prompts: int
) -> None:
    is_str = values.dtype == object
    shape = values.shape
    if dims[0] == "prompt":
        chunks = (read_prompts, *(max(1, s) for s in shape[1:]))
    else:
        chunks = tuple(max(1, s) for s in shape)
    arr = require_array(
        group,
        name,
        shape=shape,
        dtype=str if is_str else values.dtype,
        chunks=chunks,
        dims=dims,
        fill_value="" if is_str else (-1 if name == "token_id" else None),
    )
    if values.size:
        arr[...] = values
