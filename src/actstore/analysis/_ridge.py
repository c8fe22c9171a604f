"""Exact ridge regression with intercept, solved from float64 statistics.

Two exact solvers, chosen by the shape of the problem (as scikit-learn's ``Ridge`` does):

* primal (samples >= d_model): from per-fold centred moments (counts, means and co-moments about
  the mean, merged chunk by chunk, see :class:`._stats.Moments`); the training moments of fold
  ``f`` are the pooled moments of the other folds.
* dual (samples < d_model): from the rows themselves (fewer numbers than ``X^T X``) through the
  centred Gram matrix ``X X^T``.

Both solve ``(M + alpha I) w = b`` for every alpha as :func:`_ridge_solve` says.

Everything here is numpy on arrays already in memory; :mod:`._stats` builds the inputs out of core.
Shapes: ``d`` is d_model, ``t`` the number of target columns (the target and its shuffled control),
``A`` the number of alphas, ``k`` the number of folds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from actstore.errors import ActstoreWarning, InvalidArgumentError

__all__ = [
    "CONSTANT_RTOL",
    "FoldMetrics",
    "dual_cv",
    "dual_fit",
    "fold_mean",
    "kfold_assign",
    "primal_data_scale",
    "primal_fold_solutions",
    "primal_solve",
    "r2_defined",
    "r2_score",
    "std_scale",
    "varies",
]

# Shared eigendecomposition (then refinement) for at least this many alphas on systems up to this
# size; beyond it one LU per alpha is cheaper.
_EIGH_FROM = 3
_EIGH_MAX = 768
_REFINE_STEPS = 4
_REFINE_RTOL = 1e-13

#: A set of target values whose spread (max - min) is at most this fraction of the target's
#: largest absolute value counts as constant: R² (and a probe) is undefined on it. The spread is
#: exact (no rounding), so the decision does not depend on summation order.
CONSTANT_RTOL = 1e-10


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


def varies(y: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """Whether each column of ``y (n, t)`` varies: ``max - min > CONSTANT_RTOL * scale``."""
    if len(y) == 0:
        return np.zeros(y.shape[1:], dtype=bool)
    return np.ptp(y, axis=0) > CONSTANT_RTOL * np.asarray(scale)


def r2_defined(y: np.ndarray, fold: np.ndarray, k: int) -> np.ndarray:
    """``(k, t)``: whether fold ``f``'s held-out targets vary, i.e. its R² is defined."""
    scale = np.abs(y).max(axis=0)
    return np.stack([varies(y[fold == f], scale) for f in range(k)])


def r2_score(sse: np.ndarray, sst: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """``1 - sse / sst`` where ``defined`` (broadcast), NaN elsewhere (a constant target)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(defined, 1.0 - sse / sst, np.nan)


def fold_mean(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean over folds of those that are defined (not NaN); NaN where none is, no warning."""
    ok = ~np.isnan(values)
    count = ok.sum(axis=axis)
    total = np.where(ok, values, 0.0).sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def std_scale(var: np.ndarray, mean: np.ndarray, n: float) -> np.ndarray:
    """Per-column scale ``(d,)`` as scikit-learn's ``StandardScaler`` sets it.

    ``sqrt(var)`` (population variance, ddof=0), and 1 for a column whose variance is below
    rounding noise: ``var <= n * eps * var + (n * mean * eps) ** 2`` (scikit-learn's
    ``_is_constant_feature``), so a constant column is left as it is.
    """
    eps = np.finfo(np.float64).eps
    var = np.maximum(var, 0.0)
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    return np.where(constant, 1.0, np.sqrt(var))


def _matmul3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a (m, j)`` times ``b (j, t, A)`` -> ``(m, t, A)`` as one BLAS matmul."""
    return (a @ b.reshape(b.shape[0], -1)).reshape(a.shape[0], *b.shape[1:])


def _ridge_solve(
    mat: np.ndarray, rhs: np.ndarray, alphas: np.ndarray
) -> np.ndarray:  # (m, m), (m, t) -> (m, t, A)
    """Solve ``(mat + alpha I) w = rhs`` for every alpha (``mat`` symmetric PSD).

    Small systems with several alphas: one eigendecomposition shared by all alphas, each answer
    polished by iterative refinement against ``mat`` itself (an eigendecomposition alone loses
    digits in the small eigenvalues when the columns' scales differ a lot: a few "massive"
    activation dims beside near-constant ones). A system whose refinement does not converge, and
    every large one (where LU is the cheaper of the two), is solved by LU of the Jacobi-equilibrated
    system ``S (mat + alpha I) S v = S rhs``, ``w = S v``, ``S = diag(mat + alpha)^(-1/2)``.
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    out = np.empty((mat.shape[0], rhs.shape[1], len(alphas)))
    todo = list(range(len(alphas)))
    if len(alphas) >= _EIGH_FROM and mat.shape[0] <= _EIGH_MAX:
        lam, vec = np.linalg.eigh(mat)
        todo = [
            i for i, a in enumerate(alphas) if not _refined(mat, rhs, a, lam, vec, out[:, :, i])
        ]
    diag = np.maximum(np.diagonal(mat), 0.0)
    rows = np.arange(mat.shape[0])
    for i in todo:
        alpha = alphas[i]
        scale = 1.0 / np.sqrt(diag + alpha)
        eq = mat * scale[:, None]
        eq *= scale[None, :]
        eq[rows, rows] += alpha * scale * scale
        try:
            v = np.linalg.solve(eq, scale[:, None] * rhs)
        except np.linalg.LinAlgError:
            # singular to working precision (an alpha below the rounding of the data's scale):
            # the minimum-norm least-squares answer, as scikit-learn's Ridge falls back to
            v = np.linalg.lstsq(eq, scale[:, None] * rhs, rcond=None)[0]
            warnings.warn(
                f"ridge system singular to working precision at alpha={alpha:g} (the alpha is "
                "below the rounding of the data's scale); used the least-squares solution, as "
                "scikit-learn does: use larger alphas or standardize=True",
                ActstoreWarning,
                stacklevel=2,
            )
        out[:, :, i] = scale[:, None] * v
    return out


def _refined(
    mat: np.ndarray, rhs: np.ndarray, alpha: float, lam: np.ndarray, vec: np.ndarray, w: np.ndarray
) -> bool:
    """Eigen-solve for one alpha into ``w``, refined until the correction stops mattering."""
    inv = 1.0 / (np.maximum(lam, 0.0) + alpha)
    w[:] = vec @ (inv[:, None] * (vec.T @ rhs))
    for _ in range(_REFINE_STEPS):
        step = vec @ (inv[:, None] * (vec.T @ (rhs - mat @ w - alpha * w)))
        w += step
        if np.abs(step).max() <= _REFINE_RTOL * np.abs(w).max():
            return True
    return False


# ----------------------------------------------------------------------------------------------
# dual: rows in memory, Gram matrix
# ----------------------------------------------------------------------------------------------
def _gram_means(k_all_t: np.ndarray, k_tt: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Row means of ``K[:, T]``, column means of ``K[T, T]`` and their grand mean."""
    row_mean = k_all_t.mean(axis=1)  # mean_j K(x_i, x_j) over training j, for every i
    col_mean = k_tt.mean(axis=0)  # mean_i K(x_i, x_j) over training i
    grand = col_mean.mean()
    return row_mean, col_mean, grand


def _centre_gram(gram: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train-centred Gram ``Kc[T, T]`` and the centred cross-Gram of every row against ``T``."""
    k_all_t = gram[:, train]  # (n, n_T): every row against the training rows
    row_mean, col_mean, grand = _gram_means(k_all_t, k_all_t[train])
    cross = k_all_t - row_mean[:, None] - col_mean[None, :] + grand
    if np.array_equal(train, np.arange(len(gram))):  # the refit: cross[train] is cross itself
        return cross, cross
    return cross[train], cross


def _centre_fold(
    gram: np.ndarray, train: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_centre_gram`'s ``cross[train]`` and ``cross[test]``: the same numbers (the same
    arithmetic on each element, the same means), without forming the whole cross-Gram first."""
    k_all_t = gram[:, train]
    k_tt = k_all_t[train]
    row_mean, col_mean, grand = _gram_means(k_all_t, k_tt)
    tt = k_tt - row_mean[train][:, None] - col_mean[None, :] + grand
    cross_test = k_all_t[test] - row_mean[test][:, None] - col_mean[None, :] + grand
    return tt, cross_test


def dual_cv(
    gram: np.ndarray,
    y: np.ndarray,
    fold: np.ndarray,
    alphas: np.ndarray,
    defined: np.ndarray,
    *,
    x: np.ndarray | None = None,
    shift: np.ndarray | None = None,
) -> FoldMetrics:
    """k-fold held-out R² and MAE of ridge with intercept, from the Gram matrix of the rows.

    Parameters
    ----------
    gram : (n, n) float64 ``X X^T`` of the rows (shifted by any constant row: centring removes it).
    y : (n, t) float64 targets.
    fold : (n,) fold id of each row.
    alphas : (A,) penalties.
    defined : (k, t) whether fold ``f``'s held-out targets vary (R² NaN where not).
    x, shift : to standardise, the rows ``(n, d)`` (minus ``shift (d,)``) that ``gram`` is made
        of: each fold's Gram matrix is then rebuilt from its training rows' z-scores
        (:func:`std_scale` of the training rows, as a scaler fitted inside the fold).
    """
    k = int(fold.max()) + 1
    t = y.shape[1]
    r2 = np.empty((k, t, len(alphas)))
    mae = np.empty_like(r2)
    for f in range(k):
        test = fold == f
        train = ~test
        if x is not None:
            xt = x[train]
            scale = std_scale(xt.var(axis=0), xt.mean(axis=0) + shift, float(len(xt)))
            xs = x / scale
            gram = xs @ xs.T
        kc_tt, kc_test = _centre_fold(gram, np.flatnonzero(train), np.flatnonzero(test))
        y_mean = y[train].mean(axis=0)
        dual = _ridge_solve(kc_tt, y[train] - y_mean, alphas)  # (n_T, t, A)
        pred = _matmul3(kc_test, dual) + y_mean[None, :, None]
        resid = y[test][:, :, None] - pred
        sse = (resid**2).sum(axis=0)
        yc = y[test] - y[test].mean(axis=0)
        r2[f] = r2_score(sse, (yc * yc).sum(axis=0)[:, None], defined[f][:, None])
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
    dual = _ridge_solve(kc, y - y_mean, alphas)  # (n, t, A)
    x_mean = x.mean(axis=0)
    coef = _matmul3(x.T, dual) - x_mean[:, None, None] * dual.sum(axis=0)[None]
    intercept = y_mean[:, None] - _matmul3(x_mean[None, :], coef)[0]
    pred = _matmul3(kc, dual) + y_mean[None, :, None]
    return coef, intercept, pred


# ----------------------------------------------------------------------------------------------
# primal: per-fold moments
# ----------------------------------------------------------------------------------------------
def primal_solve(
    mx: np.ndarray, my: np.ndarray, cxx: np.ndarray, cxy: np.ndarray, alphas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge with intercept from the centred moments of its training rows, for every alpha.

    ``mx`` (d,), ``my`` (t,) means, ``cxx`` (d, d), ``cxy`` (d, t) co-moments about them ->
    coefficients ``(d, t, A)`` and intercepts ``(t, A)``.
    """
    w = _ridge_solve(cxx, cxy, alphas)
    return w, my[:, None] - _matmul3(mx[None, :], w)[0]


def _pool(
    n: np.ndarray, mx: np.ndarray, my: np.ndarray, wx: np.ndarray, wy: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pool groups ``(g,)`` given their means and the sums of their within co-moments ``wx``
    (d, d), ``wy`` (d, t): adds the between-group term ``sum_g n_g (m_g - m)(m_g - m)^T``."""
    n_tot = float(n.sum())
    mx_p = (n[:, None] * mx).sum(axis=0) / n_tot
    my_p = (n[:, None] * my).sum(axis=0) / n_tot
    dx = mx - mx_p
    dy = my - my_p
    return n_tot, mx_p, my_p, wx + (dx * n[:, None]).T @ dx, wy + (dx * n[:, None]).T @ dy


def primal_data_scale(n: np.ndarray, mx: np.ndarray, cxx: np.ndarray, standardize: bool) -> float:
    """The scale alphas are relative to: ``trace(C) / d`` of all rows' centred co-moments ``C``
    (the mean eigenvalue of ``X_c^T X_c``), of their z-scores when ``standardize``.

    Per-fold moments ``n (k,)``, ``mx (k, d)``, ``cxx (k, d, d)`` of one layer.
    """
    n_tot = float(n.sum())
    mean = (n[:, None] * mx).sum(axis=0) / n_tot
    diag = np.diagonal(cxx, axis1=1, axis2=2).sum(axis=0) + (n[:, None] * (mx - mean) ** 2).sum(0)
    if standardize:
        diag = diag / std_scale(diag / n_tot, mean, n_tot) ** 2
    return float(diag.mean())


def primal_fold_solutions(
    n: np.ndarray,
    mx: np.ndarray,
    my: np.ndarray,
    cxx: np.ndarray,
    cxy: np.ndarray,
    alphas: np.ndarray,
    standardize: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solutions trained on all folds but ``f`` for every fold ``f``, then one on all folds.

    Parameters are per-fold centred moments of one layer: ``n`` (k,), ``mx`` (k, d), ``my`` (k, t),
    ``cxx`` (k, d, d), ``cxy`` (k, d, t). Returns coefficients ``(k + 1, d, t, A)`` and the training
    means ``(k + 1, d)`` and ``(k + 1, t)`` (predict ``(x - mean_x) @ coef + mean_y``); index ``k``
    is the refit on all data. Fold ``f``'s training moments pool the other folds: the sum of their
    within co-moments (the total minus fold ``f``'s) plus their between-means term.

    ``standardize``: solve on the z-scores of each training set (scale :func:`std_scale` of its
    pooled variance, as ``StandardScaler`` fitted inside the fold): ``D^-1 C D^-1 v = D^-1 c``,
    and return the coefficients in the raw space, ``w = D^-1 v``.
    """
    k = len(n)
    wx_tot, wy_tot = cxx.sum(axis=0), cxy.sum(axis=0)
    coefs, mxs, mys = [], [], []
    for f in [*range(k), None]:
        if f is None:
            pooled = _pool(n, mx, my, wx_tot, wy_tot)
        else:
            rest = np.arange(k) != f
            pooled = _pool(n[rest], mx[rest], my[rest], wx_tot - cxx[f], wy_tot - cxy[f])
        n_p, mx_p, my_p, cxx_p, cxy_p = pooled
        if standardize:
            scale = std_scale(np.diagonal(cxx_p) / n_p, mx_p, n_p)
            sol = _ridge_solve(cxx_p / np.outer(scale, scale), cxy_p / scale[:, None], alphas)
            coefs.append(sol / scale[:, None, None])
        else:
            coefs.append(_ridge_solve(cxx_p, cxy_p, alphas))
        mxs.append(mx_p)
        mys.append(my_p)
    return np.stack(coefs), np.stack(mxs), np.stack(mys)
