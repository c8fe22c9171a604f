"""Reading materialised positions (``<set>/positions``, see :mod:`actstore.store.core._positions`).

:func:`materialised_rows` is the read path's one decision: use the small positions array when the
cache holds the requested (hook, position) completely, else ``None`` (the caller reads the full
activations). Both give the same bytes for every selected sample.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from actstore.analysis._data import RowSource, SetSource

__all__ = ["materialised_rows"]


def materialised_rows(
    src: SetSource, hook: str, position: str, prompt: np.ndarray, token: np.ndarray
) -> RowSource | None:
    """A :class:`RowSource` over ``<set>/positions/<hook>`` at ``position``, or ``None``.

    ``None`` when the source is not a cache, the positions group is absent or incomplete, lacks
    the hook or the position, or its ``token_index`` disagrees with ``(prompt, token)``.
    """
    import dask.array as da
    import xarray as xr

    from actstore.analysis._data import RowSource
    from actstore.prompts import parse_position
    from actstore.store import stored_positions

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
    index = np.asarray(group["token_index"][:, j], dtype=np.int64)
    if not np.array_equal(index[prompt], token):  # not the tokens asked for: read the full array
        return None
    arr = group[hook]
    shard = arr.shards or arr.chunks
    data = da.from_array(arr, chunks=(shard[0], 1, 1, arr.shape[3]), asarray=True, fancy=False)
    act = xr.DataArray(data, dims=("prompt", "layer", "position", "d_model"))
    token_at = np.full(len(prompt), j, dtype=np.int64)
    return RowSource(act=act, token=token_at, unit=arr.chunks[0], materialised=True)
