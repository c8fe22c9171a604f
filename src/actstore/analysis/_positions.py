"""Where the rows of one (hook, position) come from: the full activations or ``<set>/positions``.

:func:`row_source` picks between the full ``(prompt, layer, token, d_model)`` array and the
materialised positions (see :mod:`actstore.store.core._positions`). :func:`materialised_rows` is the
read path's one decision: use the small positions array when the
cache holds the requested (hook, position) completely, else ``None`` (the caller reads the full
activations). Both give the same bytes for every selected sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from actstore.analysis._data import SetSource
from actstore.analysis._stats import chunk_prompts
from actstore.errors import CorruptCacheError

__all__ = ["RowSource", "materialised_rows", "row_source"]


@dataclass(frozen=True, kw_only=True)
class RowSource:
    """What the row readers read for one (hook, position): the array and the indices into it."""

    act: xr.DataArray  # (prompt, layer, token or position, d_model), raw dtype
    token: np.ndarray  # (n,) index along the third dimension for each selected sample
    unit: int  # inner chunk along prompt (tasks align to it)
    materialised: bool


def row_source(
    src: SetSource, hook: str, position: str, prompt: np.ndarray, token: np.ndarray
) -> RowSource:
    """The materialised positions of ``hook`` at ``position`` when stored, else the full array.

    ``prompt`` / ``token`` are :func:`select_positions`' answer. The materialised rows are used
    only when the cache holds a complete positions group with this hook and position and its
    ``token_index`` names exactly these tokens; they are the same bytes, so results are identical.
    """
    found = materialised_rows(src, hook, position, prompt, token)
    if found is not None:
        return found
    return RowSource(act=src.ds[hook], token=token, unit=chunk_prompts(src.ds), materialised=False)


def materialised_rows(
    src: SetSource, hook: str, position: str, prompt: np.ndarray, token: np.ndarray
) -> RowSource | None:
    """A :class:`RowSource` over ``<set>/positions/<hook>`` at ``position``, or ``None``.

    ``None`` when the source is not a cache, the positions group is absent or incomplete, lacks
    the hook or the position, or its ``token_index`` disagrees with ``(prompt, token)``.
    """
    import dask.array as da
    from dask.base import tokenize

    from actstore.prompts import parse_position
    from actstore.store import stored_positions
    from actstore.store.core import GuardedArray, damaged_shards

    if src.cache is None or not len(prompt):
        return None
    try:
        name = str(parse_position(position))
    except ValueError:
        return None
    stored = stored_positions(src.cache, src.prompt_set)
    if stored is None or name not in stored["positions"] or hook not in stored["hooks"]:
        return None
    group = stored["group"]
    j = stored["positions"].index(name)
    where = f"{src.prompt_set}/positions"
    # Damaged bytes raise CorruptCacheError naming the chunk (zarr raises a bare ValueError, and
    # reads a deleted shard as zeros): the same refusal as the full array's and the fast path's.
    bad = damaged_shards(src.cache, where, [hook], set(range(_n_blocks(src))))
    if bad:
        raise CorruptCacheError(
            f"expected every shard of {where}/{hook} in {src.cache.url!r}, got {', '.join(bad[:5])}"
            f"; run `actstore verify {src.cache.url}` to list the damage and `actstore repair "
            f"{src.cache.url}` to fix it (then derive the positions again)"
        )
    index_arr = GuardedArray(group["token_index"], f"{where}/token_index", src.cache.url)
    index = np.asarray(index_arr[:, j], dtype=np.int64)
    if not np.array_equal(index[prompt], token):  # not the tokens asked for: read the full array
        return None
    arr = group[hook]
    shard = arr.shards or arr.chunks
    guarded = GuardedArray(arr, f"{where}/{hook}", src.cache.url)
    chunks = (shard[0], 1, 1, arr.shape[3])
    data = da.from_array(
        guarded,
        chunks=chunks,
        name=f"actstore-positions-{tokenize(src.cache.url, where, hook, chunks, str(arr.dtype))}",
        asarray=False,
        fancy=False,
        lock=False,
        meta=np.empty((0,) * arr.ndim, dtype=guarded.dtype),
    )
    act = xr.DataArray(data, dims=("prompt", "layer", "position", "d_model"))
    token_at = np.full(len(prompt), j, dtype=np.int64)
    return RowSource(act=act, token=token_at, unit=arr.chunks[0], materialised=True)


def _n_blocks(src: SetSource) -> int:
    return int(src.cache.set_info(src.prompt_set)["layout"]["n_blocks"])
