"""Exact ridge regression with intercept, solved from float64 statistics.

Two exact solvers, chosen by the shape of the problem (as scikit-learn's ``Ridge`` does):

* primal (samples >= d_model): from per-fold moments ``X^T X``, ``X^T y``, sums and counts,
  accumulated chunk by chunk; the training statistics of fold ``f`` are the total minus
  fold ``f``'s.
* dual (samples < d_model): from the rows themselves (fewer numbers than ``X^T X``) through the
  centred Gram matrix ``X X^T``; one eigendecomposition per fold gives every alpha.

Everything here is numpy on arrays already in memory; :mod:`._stats` builds the inputs out of core.
Shapes: ``d`` is d_model, ``t`` the number of target columns (the target and its shuffled control),
``A`` the number of alphas, ``k`` the number of folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from actstore.errors import InvalidArgumentError

__all__ = [
    "FoldMetrics",
    "dual_cv",
    "dual_fit",
    "kfold_assign",
    "primal_fold_solutions",
    "primal_solve",
    "r2_from_sums",
]

# A single alpha is cheaper by a direct solve; from this many alphas on one eigendecomposition wins.
_EIGH_FROM = 3


def kfold_assign(n: int, k: int, seed: int) -> np.ndarray:
    """Fold id of each of ``n`` items, identical to ``KFold(k, shuffle=True, random_state=seed)``.

    scikit-learn shuffles ``arange(n)`` with ``RandomState(seed)`` and cuts it into ``k``
    consecutive folds, the first ``n % k`` one item larger; reproducing that lets tests compare
    fold by fold.
    """
    if k < 2:
        raise InvalidArgumentError(f"expected cv >= 2 folds, got {k}; pass cv=5 (or more)")
    if n < k:
        raise InvalidArgumentError(
            f"expected at least cv={k} labelled prompts, got {n}; use fewer folds or more prompts"
        )
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(k, n // k, dtype=np.int64)
    sizes[: n % k] += 1
    fold = np.empty(n, dtype=np.int64)
    start = 0
    for f, size in enumerate(sizes):
        fold[order[start : start + size]] = f
        start += size
    return fold


@dataclass(frozen=True, kw_only=True)
class FoldMetrics:
    """Held-out metrics of every fold: arrays ``(fold, target, alpha)``."""

    r2: np.ndarray
    mae: np.ndarray


def r2_from_sums(sse: np.ndarray, sy: np.ndarray, syy: np.ndarray, n: np.ndarray) -> np.ndarray:
    """R² as ``sklearn.metrics.r2_score`` computes it, from the residual and label sums."""
    sst = syy - sy * sy / n
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - sse / sst
    # r2_score: a constant target gives 1.0 for a perfect fit, 0.0 otherwise.
    return np.where(sst > 0, r2, np.where(sse == 0, 1.0, 0.0))


def _matmul3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a (m, j)`` times ``b (j, t, A)`` -> ``(m, t, A)`` as one BLAS matmul."""
    return (a @ b.reshape(b.shape[0], -1)).reshape(a.shape[0], *b.shape[1:])


def _spectral_solve(
    mat: np.ndarray, rhs: np.ndarray, alphas: np.ndarray
) -> np.ndarray:  # (m, m), (m, t) -> (m, t, A)
    """Solve ``(mat + alpha I) w = rhs`` for every alpha (``mat`` symmetric PSD)."""
    alphas = np.asarray(alphas, dtype=np.float64)
    if len(alphas) < _EIGH_FROM:
        eye = np.eye(mat.shape[0])
        return np.stack([np.linalg.solve(mat + a * eye, rhs) for a in alphas], axis=-1)
    lam, vec = np.linalg.eigh(mat)
    proj = vec.T @ rhs  # (m, t)
    scaled = proj[:, :, None] / (lam[:, None, None] + alphas[None, None, :])
    return _matmul3(vec, scaled)


# ----------------------------------------------------------------------------------------------
# dual: rows in memory, Gram matrix
# ----------------------------------------------------------------------------------------------
def _centre_gram(gram: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train-centred Gram ``Kc[T, T]`` and the centred cross-Gram of every row against ``T``."""
    k_all_t = gram[:, train]  # (n, n_T): every row against the training rows
    k_tt = k_all_t[train]
    row_mean = k_all_t.mean(axis=1)  # mean_j K(x_i, x_j) over training j, for every i
    col_mean = k_tt.mean(axis=0)  # mean_i K(x_i, x_j) over training i
    grand = col_mean.mean()
    cross = k_all_t - row_mean[:, None] - col_mean[None, :] + grand
    return cross[train], cross


def dual_cv(gram: np.ndarray, y: np.ndarray, fold: np.ndarray, alphas: np.ndarray) -> FoldMetrics:
    """k-fold held-out R² and MAE of ridge with intercept, from the Gram matrix of the rows.

    Parameters
    ----------
    gram : (n, n) float64 ``X X^T`` of the rows (shifted by any constant row: centring removes it).
    y : (n, t) float64 targets.
    fold : (n,) fold id of each row.
    alphas : (A,) penalties.
    """
    k = int(fold.max()) + 1
    t = y.shape[1]
    r2 = np.empty((k, t, len(alphas)))
    mae = np.empty_like(r2)
    for f in range(k):
        test = fold == f
        train = ~test
        kc_tt, kc_cross = _centre_gram(gram, np.flatnonzero(train))
        y_mean = y[train].mean(axis=0)
        dual = _spectral_solve(kc_tt, y[train] - y_mean, alphas)  # (n_T, t, A)
        pred = _matmul3(kc_cross[test], dual) + y_mean[None, :, None]
        resid = y[test][:, :, None] - pred
        sse = (resid**2).sum(axis=0)
        yt = y[test]
        r2[f] = r2_from_sums(
            sse, yt.sum(axis=0)[:, None], (yt**2).sum(axis=0)[:, None], float(test.sum())
        )
        mae[f] = np.abs(resid).mean(axis=0)
    return FoldMetrics(r2=r2, mae=mae)


def dual_fit(
    x: np.ndarray, gram: np.ndarray, y: np.ndarray, alphas: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refit on all rows for every alpha: coefficients ``(d, t, A)``, intercepts ``(t, A)`` and
    training predictions ``(n, t, A)``.

    ``x`` (n, d) are the rows (float64) minus a constant shift, ``gram = x x^T``. The returned
    intercepts are for the *shifted* rows.
    """
    n = x.shape[0]
    kc, _ = _centre_gram(gram, np.arange(n))
    y_mean = y.mean(axis=0)
    dual = _spectral_solve(kc, y - y_mean, alphas)  # (n, t, A)
    x_mean = x.mean(axis=0)
    coef = _matmul3(x.T, dual) - x_mean[:, None, None] * dual.sum(axis=0)[None]
    intercept = y_mean[:, None] - _matmul3(x_mean[None, :], coef)[0]
    pred = _matmul3(kc, dual) + y_mean[None, :, None]
    return coef, intercept, pred


# ----------------------------------------------------------------------------------------------
# primal: per-fold moments
# ----------------------------------------------------------------------------------------------
def _centred(
    n: float, sx: np.ndarray, sy: np.ndarray, sxx: np.ndarray, sxy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mx = sx / n
    my = sy / n
    cxx = sxx - n * np.outer(mx, mx)
    cxy = sxy - n * np.outer(mx, my)
    return mx, my, cxx, cxy


def primal_solve(
    n: float, sx: np.ndarray, sy: np.ndarray, sxx: np.ndarray, sxy: np.ndarray, alphas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge with intercept from the moments of its training rows, for every alpha.

    ``sx`` (d,), ``sy`` (t,), ``sxx`` (d, d), ``sxy`` (d, t) -> coefficients ``(d, t, A)`` and
    intercepts ``(t, A)`` (for the same shifted rows the moments were taken of).
    """
    mx, my, cxx, cxy = _centred(n, sx, sy, sxx, sxy)
    w = _spectral_solve(cxx, cxy, alphas)
    return w, my[:, None] - _matmul3(mx[None, :], w)[0]


def primal_fold_solutions(
    n: np.ndarray,
    sx: np.ndarray,
    sy: np.ndarray,
    sxx: np.ndarray,
    sxy: np.ndarray,
    alphas: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Solutions trained on all folds but ``f`` for every fold ``f``, then one on all folds.

    Parameters are per-fold moments of one layer: ``n`` (k,), ``sx`` (k, d), ``sy`` (k, t),
    ``sxx`` (k, d, d), ``sxy`` (k, d, t). Returns coefficients ``(k + 1, d, t, A)`` and intercepts
    ``(k + 1, t, A)``; index ``k`` is the refit on all data. The training moments of fold ``f`` are
    the total minus fold ``f``'s, so the data is read once for all folds.
    """
    tot = (n.sum(), sx.sum(0), sy.sum(0), sxx.sum(0), sxy.sum(0))
    sols = [
        primal_solve(
            tot[0] - n[f], tot[1] - sx[f], tot[2] - sy[f], tot[3] - sxx[f], tot[4] - sxy[f], alphas
        )
        for f in range(len(n))
    ]
    sols.append(primal_solve(*tot, alphas))
    return np.stack([c for c, _ in sols]), np.stack([b for _, b in sols])
