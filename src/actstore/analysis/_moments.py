"""Per-fold centred float64 moments of row batches (numpy only: the primal ridge solver's input).

Moved out of :mod:`._stats` (which imports dask for the reads) so that a fit from rows already
read, e.g. the fast path of :mod:`._light`, imports no dask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Moments"]


@dataclass
class Moments:
    """Per-fold centred float64 moments of one group of layers (``k`` folds, ``L`` layers, ``t``
    targets): counts, means and co-moments about the mean.

    Each batch is centred on its own mean (in float64) and merged into the running moments with
    Chan et al.'s pairwise update, so no sum of raw squares is ever formed: a large common offset
    or a few huge ("massive activation") columns cost no precision beyond the input's own.
    """

    n: np.ndarray  # (k,)
    my: np.ndarray  # (k, t)   mean of y
    cyy: np.ndarray  # (k, t)  sum of (y - my)^2
    mx: np.ndarray  # (k, L, d)  mean of x
    cxx: np.ndarray  # (k, L, d, d)  sum of (x - mx)(x - mx)^T
    cxy: np.ndarray  # (k, L, d, t)  sum of (x - mx)(y - my)^T

    @classmethod
    def zeros(cls, k: int, n_layers: int, d: int, t: int) -> Moments:
        return cls(
            n=np.zeros(k),
            my=np.zeros((k, t)),
            cyy=np.zeros((k, t)),
            mx=np.zeros((k, n_layers, d)),
            cxx=np.zeros((k, n_layers, d, d)),
            cxy=np.zeros((k, n_layers, d, t)),
        )

    @staticmethod
    def nbytes(k: int, n_layers: int, d: int, t: int) -> int:
        return 8 * k * n_layers * (d * d + d * (t + 1))

    def add(self, rows: np.ndarray, y: np.ndarray, fold: np.ndarray) -> None:
        """Merge float32 rows ``(m, L, d)`` with targets ``(m, t)`` and fold ids ``(m,)``.

        Chan's update ``C += Xc^T Xc + w dx dx^T`` (``w = n_a m / n``, ``dx`` the difference of the
        means) is one matrix product: the between-means term is one extra row ``sqrt(w) dx``
        appended to the centred batch, so merging costs no pass over ``C`` beyond the product's.
        """
        for f in np.unique(fold):
            sel = np.flatnonzero(fold == f)
            m = len(sel)
            n_a = self.n[f]
            n = n_a + m
            root = np.sqrt(n_a * m / n)
            yf = y[sel]
            my_b = yf.mean(axis=0)
            yext = np.empty((m + 1, yf.shape[1]))
            yext[:m] = yf - my_b
            yext[m] = root * (my_b - self.my[f])
            self.cyy[f] += (yext * yext).sum(axis=0)
            self.my[f] += (my_b - self.my[f]) * (m / n)
            ext = np.empty((m + 1, rows.shape[2]))
            for j in range(rows.shape[1]):
                ext[:m] = rows[sel, j]
                mx_b = ext[:m].mean(axis=0)
                ext[:m] -= mx_b
                ext[m] = root * (mx_b - self.mx[f, j])
                self.cxx[f, j] += ext.T @ ext
                self.cxy[f, j] += ext.T @ yext
                self.mx[f, j] += (mx_b - self.mx[f, j]) * (m / n)
            self.n[f] = n
