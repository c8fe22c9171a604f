"""The dask scheduler of a read, chosen as dask would choose it, without importing ``distributed``.

``dask.compute`` without a callable ``scheduler`` imports ``distributed`` (when installed) to ask
for an active client, even when none can exist: about 0.2 s, most of a small probe fit in a fresh
process. A client exists only once ``distributed`` is imported, so while it is not,
:func:`read_scheduler` answers dask's own default for arrays (the threaded scheduler) directly.
Anything else (a ``scheduler`` passed by the caller, ``dask.config`` set, ``distributed`` imported)
is left to dask, so the choice is the same as before: the active client when there is one.
"""

from __future__ import annotations

import sys
from typing import Any

import dask
import dask.array as da
import dask.threaded
import numpy as np
import xarray as xr

__all__ = ["read_scheduler", "values"]


def read_scheduler(scheduler: Any = None) -> Any:
    """``scheduler`` for ``dask.compute``: as given, or dask's default when no client can exist.

    Returns ``dask.threaded.get`` when ``scheduler`` is ``None``, ``dask.config`` names no
    scheduler and ``distributed`` is not imported (so no client is active); else ``scheduler``.
    """
    if scheduler is not None or "distributed" in sys.modules:
        return scheduler
    if dask.config.get("scheduler", None) is not None or dask.config.get("get", None) is not None:
        return scheduler
    return dask.threaded.get


def values(var: xr.DataArray | xr.Variable) -> np.ndarray:
    """``var.values`` (a small metadata variable) read with :func:`read_scheduler`'s choice."""
    data = var.data
    if isinstance(data, da.Array):
        return np.asarray(data.compute(scheduler=read_scheduler()))
    return np.asarray(var.values)
