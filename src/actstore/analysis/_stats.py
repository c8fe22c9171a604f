"""Out-of-core passes over the activations: selected rows chunk by chunk, float64 moments.

Reading is dask's job (threaded scheduler by default, or whatever ``dask.distributed`` client is
active): one task per storage chunk of prompts, which decodes that chunk, keeps only the selected
(prompt, token) rows of the requested layers and returns them as float32. The caller accumulates
float64 statistics from the returned rows, so memory is bounded by the statistics plus a few chunks,
whatever the size of the cache.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import dask
import dask.array as da
import numpy as np
import xarray as xr

from actstore.analysis._bounds import prompt_bounds
from actstore.analysis._moments import Moments
from actstore.analysis._scheduler import read_scheduler

if TYPE_CHECKING:
    from dask.delayed import Delayed

__all__ = ["Moments", "chunk_prompts", "iter_rows"]

_DEFAULT_PROMPT_CHUNK = 64


def _take(block: np.ndarray, prompt: np.ndarray, token: np.ndarray) -> np.ndarray:
    """Rows ``(m, layer, d_model)`` float32 of a decoded ``(prompt, layer, token, d_model)``."""
    return np.ascontiguousarray(block[prompt, :, token, :], dtype=np.float32)


def _parallelism() -> int:
    if "distributed" not in sys.modules:  # no client can be active: importing it costs ~0.2 s
        return max(2, os.cpu_count() or 2)
    try:
        from distributed import default_client

        return max(2, len(default_client().scheduler_info()["workers"]) * 2)
    except (ImportError, ValueError):
        return max(2, os.cpu_count() or 2)


def _one_task(part: da.Array) -> Delayed:
    """``part`` as one delayed value (its chunks joined), as ``dask.delayed`` would take it.

    Passing the array itself to ``dask.delayed`` wraps it in dask's key-reuse guard, whose graph
    imports ``distributed`` (~0.2 s in a fresh process, for nothing when no client is active);
    ``to_delayed`` builds the same optimised read (the slice fused into the zarr read) without it.
    """
    if part.npartitions > 1:
        part = part.rechunk(part.shape)
    return part.to_delayed().item()


def iter_rows(
    act: xr.DataArray,
    layer_pos: np.ndarray,
    prompt: np.ndarray,
    token: np.ndarray,
    *,
    scheduler: str | None = None,
    unit: int = 1,
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(sample_slice, rows)`` with ``rows`` float32 ``(m, len(layer_pos), d_model)``.

    ``prompt`` / ``token`` (n,) select the samples (prompt positions sorted ascending);
    ``sample_slice`` says which of them a batch holds. ``layer_pos`` are positions along ``layer``.
    ``unit`` is the store's inner chunk along ``prompt``: tasks are aligned to it.
    """
    data = act.data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(_DEFAULT_PROMPT_CHUNK, 1, -1, -1))
    # Tasks cover ~TASK_BYTES of one layer: dask fuses the slice into the zarr read, so a task
    # decodes only its own inner chunks and memory stays at a few tasks whatever the cache size.
    # Returned rows (float32, all layers) are bounded too (ROWS_BYTES): with every token a sample
    # they are as large as what was read.
    bounds = prompt_bounds(data.shape, data.dtype.itemsize, prompt, len(layer_pos), unit)
    starts = np.searchsorted(prompt, bounds)
    chunk_tasks: list[tuple[slice, list[object]]] = []
    for c in range(len(bounds) - 1):
        s0, s1 = int(starts[c]), int(starts[c + 1])
        if s0 == s1:
            continue
        p0 = int(bounds[c])
        tok = token[s0:s1]
        t0, t1 = int(tok.min()), int(tok.max()) + 1
        local_p, local_t = prompt[s0:s1] - p0, tok - t0
        layer_tasks = [
            dask.delayed(_take)(
                _one_task(data[p0 : int(bounds[c + 1]), int(j) : int(j) + 1, t0:t1]),
                local_p,
                local_t,
            )
            for j in layer_pos
        ]
        chunk_tasks.append((slice(s0, s1), layer_tasks))
    n_l = len(layer_pos)
    group = max(1, 2 * _parallelism() // n_l)
    for i in range(0, len(chunk_tasks), group):
        batch = chunk_tasks[i : i + group]
        todo = [t for _, tasks in batch for t in tasks]
        rows = dask.compute(*todo, scheduler=read_scheduler(scheduler))
        for b, (sl, _) in enumerate(batch):
            yield sl, np.concatenate(rows[b * n_l : (b + 1) * n_l], axis=1)


def chunk_prompts(ds: xr.Dataset) -> int:
    """Prompts per stored inner chunk (from the store's layout attribute), else 1."""
    meta = ds.attrs.get("actstore") or {}
    layout = meta.get("layout", {}) if isinstance(meta, dict) else {}
    return max(1, int(layout.get("chunk_prompts", 1)))
