"""The probe-fit fast path: a local cache's materialised positions read without zarr, xarray, dask.

A ridge fit at ``last`` / ``before:SPAN`` from a cache whose ``<set>/positions`` group holds the
hook at that position needs a few small arrays (the label, ``n_tokens``, the span masks,
``token_index``) and the rows themselves. :func:`light_set` reads them with
``actstore.store.format.read_local_array`` (checksums verified, sizes checked) from a local
directory and answers ``None`` whenever anything differs from the plain case, so that
:func:`~actstore.analysis.fit_probes` takes the general path (zarr, xarray, dask, the safety scan),
which then refuses or reports exactly as it always did. The rows are the same bytes either way, so
the probes are bit-identical (``tests/analysis/test_light_read.py``).

Plain case: a local directory (no URL, no zip), schema version 1, the prompt set created
(``ready``) with every block recorded, no group named in the metadata damaged in a way the reader
notices, a complete positions group holding the hook and the position whose ``token_index`` is
exactly the tokens the position selects, the requested layers stored, and a numeric ``(prompt,)``
target. A damaged positions chunk raises :class:`~actstore.errors.CorruptCacheError` here too.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from actstore.analysis._bounds import prompt_bounds
from actstore.errors import ActstoreError, CorruptCacheError
from actstore.store.format import UnsupportedArray as Unsupported
from actstore.store.format import check_local_array as check_array
from actstore.store.format import read_local_array as read_array
from actstore.store.format import read_local_json as read_json

__all__ = ["LightSet", "light_set"]

#: The store's schema version (``actstore.store.SCHEMA_VERSION``; a test keeps them equal).
SCHEMA_VERSION = 1
_ATTR = "actstore"
_DONE = "_blocks_done"


@dataclass(frozen=True, kw_only=True)
class LightSet:
    """What a ridge fit reads from one prompt set, already in memory except the rows."""

    url: str
    fingerprint: Mapping[str, Any]
    layers: list[int]  # stored layer indices
    d_model: int
    y_prompt: np.ndarray  # (prompt,) float64
    n_tokens: np.ndarray  # (prompt,) int64
    masks: dict[str, np.ndarray]  # span -> (prompt, token) bool
    position: str
    rows_path: str  # <set>/positions/<hook>
    rows_meta: dict[str, Any]
    position_index: int  # along the positions array's position axis
    unit: int  # prompts per inner chunk of the positions array
    itemsize: int  # bytes per stored value

    def select(self, prompts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(prompt, token)`` of the samples of ``prompts`` (as :func:`select_positions`);
        ``token_index`` was checked for every prompt, so :meth:`batches` reads exactly these."""
        from actstore.analysis._data import token_selection

        return token_selection(self.n_tokens, self.masks, self.position, prompts)

    def batches(
        self, layer_pos: np.ndarray, prompt: np.ndarray
    ) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(sample_slice, rows)``, ``rows`` float32 ``(m, len(layer_pos), d_model)`` of the
        samples ``prompt`` (:meth:`select`'s, sorted).

        The batches are :func:`._stats.iter_rows`' (the same bounds along ``prompt``, so the
        primal solver's merged moments are bit-identical); each decodes only the inner chunks of
        its prompts, of the requested layers, at this position.
        """
        wanted = {int(j) for j in layer_pos}
        j = self.position_index
        shape = tuple(self.rows_meta["shape"])
        bounds = prompt_bounds(shape, self.itemsize, prompt, len(layer_pos), self.unit)
        starts = np.searchsorted(prompt, bounds)
        for c in range(len(bounds) - 1):
            s0, s1 = int(starts[c]), int(starts[c + 1])
            if s0 == s1:
                continue
            p0 = int(bounds[c])
            arr = read_array(
                self.rows_path,
                self.rows_meta,
                where=self.url,
                keep=lambda cell: cell[1] in wanted and cell[2] == j,
                missing_ok=False,
                rows=(p0, int(bounds[c + 1])),
            )
            rows = arr[prompt[s0:s1] - p0][:, layer_pos, j, :]
            yield slice(s0, s1), np.ascontiguousarray(rows, dtype=np.float32)


def _local_dir(cache: Any) -> str | None:
    if isinstance(cache, os.PathLike):
        cache = os.fspath(cache)
    if not isinstance(cache, str) or not cache:
        return None
    url = cache[len("file://") :] if cache.startswith("file://") else cache
    if "://" in url or "::" in url or url.lower().endswith(".zip") or not os.path.isdir(url):
        return None
    return url


def _blocks_done(path: str, n_blocks: int) -> bool:
    """Every block's completion marker is stored (``<set>/_blocks_done/c/<block>``)."""
    try:
        names = set(os.listdir(os.path.join(path, _DONE, "c")))
    except OSError:
        return False
    return all(str(b) in names for b in range(n_blocks))


def _shards_present(base: str, hook: str, n_blocks: int) -> bool:
    """Every shard of every recorded block of ``<set>/<hook>`` is stored and at least as long as
    its index: what the general path's open checks (``damaged_shards``) before any read."""
    path = os.path.join(base, hook)
    lay = check_array(read_json(os.path.join(path, "zarr.json")))
    floor = 16 * int(np.prod([o // i for o, i in zip(lay.outer, lay.inner, strict=True)])) + 4
    floor = floor if lay.sharded else 1
    rest = [range(-(-s // o)) for s, o in zip(lay.shape[1:], lay.outer[1:], strict=True)]
    for cell in itertools.product(range(n_blocks), *rest):
        key = os.path.join(path, "c", *(str(c) for c in cell))
        if lay.sep == ".":
            key = os.path.join(path, "c." + ".".join(str(c) for c in cell))
        try:
            if os.stat(key).st_size < floor:
                return False
        except OSError:
            return False
    return True


def _prompt_column(base: str, name: str, n: int, where: str) -> np.ndarray | None:
    """A ``(prompt,)`` array of the set, or ``None`` when absent or not shaped like one."""
    if not name or name.startswith(("_", ".")) or "/" in name:
        return None
    try:
        meta = read_json(os.path.join(base, name, "zarr.json"))
    except Unsupported:
        return None
    if meta.get("dimension_names") != ["prompt"] or meta.get("shape") != [n]:
        return None
    return read_array(os.path.join(base, name), meta, where=where)


def light_set(
    cache: Any,
    prompt_set: str,
    *,
    hook: str,
    position: str,
    target: str,
    layers: Sequence[int] | None,
) -> LightSet | None:
    """The fast path's inputs for a ridge fit, or ``None`` (then take the general path).

    Raises
    ------
    CorruptCacheError
        A chunk read here fails its checksum or size checks (the general path would refuse too).
    """
    url = _local_dir(cache)
    if url is None or not prompt_set or "/" in prompt_set or prompt_set.startswith("."):
        return None
    try:
        return _read(url, cache, prompt_set, hook, position, target, layers)
    except CorruptCacheError:
        raise
    except (
        Unsupported,
        ActstoreError,
        AttributeError,
        KeyError,
        TypeError,
        ValueError,
        IndexError,
    ):
        return None  # anything unexpected: the general path reads (and reports) it


def _read(
    url: str,
    cache: Any,
    prompt_set: str,
    hook: str,
    position: str,
    target: str,
    layers: Sequence[int] | None,
) -> LightSet | None:
    from actstore.prompts import parse_position

    root = read_json(os.path.join(url, "zarr.json")).get("attributes", {}).get(_ATTR)
    if not isinstance(root, dict) or root.get("schema_version") != SCHEMA_VERSION:
        return None
    base = os.path.join(url, prompt_set)
    info = read_json(os.path.join(base, "zarr.json")).get("attributes", {}).get(_ATTR)
    if not isinstance(info, dict) or info.get("kind") != "prompt_set" or not info.get("ready"):
        return None
    spec, layout = info["spec"], info["layout"]
    n = int(spec["n_prompts"])
    stored = [int(v) for v in spec["layers"]]
    wanted = stored if layers is None else [int(v) for v in layers]
    if hook not in spec["hooks"] or not wanted or any(v not in stored for v in wanted):
        return None
    if not _blocks_done(base, int(layout["n_blocks"])):
        return None
    if not all(_shards_present(base, h, int(layout["n_blocks"])) for h in spec["hooks"]):
        return None  # a recorded block without its shards: the general path refuses it
    pos_base = os.path.join(base, "positions")
    group = read_json(os.path.join(pos_base, "zarr.json")).get("attributes", {}).get(_ATTR)
    name = str(parse_position(position))
    if (
        not isinstance(group, dict)
        or group.get("kind") != "positions"
        or group.get("complete") is not True
        or name not in group["positions"]
        or hook not in group["hooks"]
    ):
        return None
    y = _prompt_column(base, target, n, url)
    if y is None or y.dtype.kind not in "iuf":
        return None
    n_tokens = _prompt_column(base, "n_tokens", n, url)
    if n_tokens is None:
        return None
    masks = _span_masks(base, info, n, url)
    if masks is None:
        return None
    from actstore.analysis._data import token_selection

    # Every prompt's token (labelled or not): any selection of prompts then reads its own rows.
    prompt, token = token_selection(n_tokens.astype(np.int64), masks, position)
    j = list(group["positions"]).index(name)
    index_meta = read_json(os.path.join(pos_base, "token_index", "zarr.json"))
    index = read_array(os.path.join(pos_base, "token_index"), index_meta, where=url)
    if index.shape != (n, len(group["positions"])) or not len(prompt):
        return None
    if not np.array_equal(index[:, j].astype(np.int64)[prompt], token):
        return None
    rows_path = os.path.join(pos_base, hook)
    rows_meta = read_json(os.path.join(rows_path, "zarr.json"))
    d = int(spec["d_model"])
    if rows_meta.get("shape") != [n, len(stored), len(group["positions"]), d]:
        return None
    layout = check_array(rows_meta, url)  # every codec and type readable, before the fit
    unit, itemsize = layout.inner[0], layout.dtype.itemsize
    return LightSet(
        url=os.fspath(cache)[len("file://") :]
        if os.fspath(cache).startswith("file://")
        else os.fspath(cache),
        fingerprint=dict(spec.get("fingerprint") or {}),
        layers=stored,
        d_model=d,
        y_prompt=y.astype(np.float64),
        n_tokens=n_tokens.astype(np.int64),
        masks=masks,
        position=position,
        rows_path=rows_path,
        rows_meta=rows_meta,
        position_index=j,
        unit=unit,
        itemsize=itemsize,
    )


def _span_masks(base: str, info: dict[str, Any], n: int, url: str) -> dict[str, np.ndarray] | None:
    """Span name -> ``(prompt, token)`` mask; the names from the set's attributes (as the store's
    own consolidated open takes them), as many as its ``span`` array holds."""
    spans = info.get("spans")
    if not isinstance(spans, list):
        return None  # a set written before span names were recorded: read them through zarr
    names = [str(s) for s in spans]
    index = os.path.join(base, "span", "zarr.json")
    if os.path.exists(index) and read_json(index).get("shape") != [len(names)]:
        return None
    path = os.path.join(base, "span_mask")
    if not os.path.exists(os.path.join(path, "zarr.json")):
        return {} if not names else None
    meta = read_json(os.path.join(path, "zarr.json"))
    if meta.get("shape", [None, None])[:2] != [n, len(names)] or meta["data_type"] != "bool":
        return None
    if not names:
        return {}
    masks = read_array(path, meta, where=url)
    return {name: masks[:, i, :] for i, name in enumerate(names)}
