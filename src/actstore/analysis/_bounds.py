"""Where row batches start and end along ``prompt`` (numpy only, shared by every row reader).

The primal solver merges per-batch moments (:class:`._moments.Moments`), whose last bits depend on
where batches start and end; the dask reader (:func:`._stats.iter_rows`) and the light reader
(:mod:`._light`) therefore cut the prompts at the same bounds, so their fits are bit-identical.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ROWS_BYTES", "TASK_BYTES", "prompt_bounds"]

#: Bytes of stored activations one batch decodes per layer (about).
TASK_BYTES = 4 * 2**20
#: Bytes of float32 rows one batch returns, all its layers (at most).
ROWS_BYTES = 16 * 2**20


def prompt_bounds(
    shape: tuple[int, ...], itemsize: int, prompt: np.ndarray, n_layers: int, unit: int
) -> np.ndarray:
    """Batch bounds along ``prompt`` (``0 = b_0 < b_1 < ... = shape[0]``), multiples of ``unit``.

    ``shape`` is the read array's ``(prompt, layer, token or position, d_model)``, ``prompt``
    the selected samples' prompt positions (sorted), ``n_layers`` the layers read.
    """
    per_prompt = max(1, shape[2] * shape[3] * itemsize)
    # distinct prompts (np.unique would import numpy.ma, ~20 ms of a fresh process's fit)
    distinct = int(np.count_nonzero(np.bincount(prompt))) if len(prompt) else 0
    rows_per_prompt = max(1.0, len(prompt) / max(1, distinct))
    row_bytes = rows_per_prompt * n_layers * shape[3] * 4
    step = max(1, min(TASK_BYTES // per_prompt, int(ROWS_BYTES // row_bytes)))
    step = max(unit, step - step % unit)
    return np.append(np.arange(0, shape[0], step), shape[0])
