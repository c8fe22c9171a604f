"""The fitting engine: cross-validated ridge for every layer from passes over row batches.

Input is a factory of row batches (``(sample_slice, rows (m, L, d) float32)``, see
:func:`._stats.iter_rows`), the targets ``Y (n, t)`` (column 0 the target, then controls) and
the fold ids.
Output is a dict of float64 arrays with a leading layer axis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from actstore.analysis._ridge import (
    dual_cv,
    dual_fit,
    primal_fold_solutions,
    r2_from_sums,
)
from actstore.analysis._stats import Moments
from actstore.errors import InvalidArgumentError

__all__ = ["BatchFactory", "choose_solver", "fit_engine"]

BatchFactory = Callable[[np.ndarray], Iterator[tuple[slice, np.ndarray]]]


def choose_solver(solver: str, n: int, d: int) -> str:
    """``auto`` -> ``dual`` when there are fewer samples than features (like scikit-learn)."""
    if solver not in ("auto", "primal", "dual"):
        raise InvalidArgumentError(
            f"expected solver 'auto', 'primal' or 'dual', got {solver!r}; leave it at 'auto'"
        )
    if solver == "auto":
        return "dual" if n < d else "primal"
    return solver


def _choose(cv_r2: np.ndarray) -> np.ndarray:
    """Index of the best mean held-out R² per target column: ``(fold, t, A)`` -> ``(t,)``."""
    mean = np.nan_to_num(cv_r2.mean(axis=0), nan=-np.inf)
    return np.argmax(mean, axis=-1)


def _result(n_layers: int, k: int, d: int, t: int, a: int) -> dict[str, np.ndarray]:
    return {
        "cv_r2_fold": np.empty((n_layers, k, t, a)),
        "cv_mae_fold": np.empty((n_layers, k, t, a)),
        "train_r2": np.empty((n_layers, t, a)),
        "train_mae": np.empty((n_layers, t, a)),
        "coef": np.empty((n_layers, t, d)),
        "intercept": np.empty((n_layers, t)),
        "alpha_index": np.empty((n_layers, t), dtype=np.int64),
    }


def _fit_dual(
    batches: BatchFactory,
    n_layers: int,
    d: int,
    y: np.ndarray,
    fold: np.ndarray,
    alphas: np.ndarray,
) -> dict[str, np.ndarray]:
    n, t = y.shape
    k = int(fold.max()) + 1
    out = _result(n_layers, k, d, t, len(alphas))
    # Fewer samples than features: the rows themselves are smaller than X^T X, so keep them.
    rows = np.empty((n, n_layers, d), dtype=np.float32)
    for sl, block in batches(np.arange(n_layers)):
        rows[sl] = block
    for j in range(n_layers):
        x = rows[:, j].astype(np.float64)
        shift = x.mean(axis=0)
        x -= shift
        gram = x @ x.T
        folds = dual_cv(gram, y, fold, alphas)
        out["cv_r2_fold"][j] = folds.r2
        out["cv_mae_fold"][j] = folds.mae
        # Refit on all rows for every alpha at once: training metrics beside the held-out ones.
        coef, intercept, pred = dual_fit(x, gram, y, alphas)
        resid = y[:, :, None] - pred
        out["train_mae"][j] = np.abs(resid).mean(axis=0)
        out["train_r2"][j] = r2_from_sums(
            (resid**2).sum(axis=0), y.sum(axis=0)[:, None], (y * y).sum(axis=0)[:, None], float(n)
        )
        choice = _choose(folds.r2)
        cols = np.arange(t)
        chosen = coef[:, cols, choice]  # (d, t)
        out["coef"][j] = chosen.T
        out["intercept"][j] = intercept[cols, choice] - shift @ chosen
        out["alpha_index"][j] = choice
    return out


def _apply(x: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``x (m, d)`` times ``coef (d, t, A)`` -> ``(m, t, A)`` as one BLAS matmul."""
    return (x @ coef.reshape(coef.shape[0], -1)).reshape(x.shape[0], *coef.shape[1:])


def _layer_groups(n_layers: int, per_layer: int, max_memory: int) -> list[np.ndarray]:
    size = max(1, min(n_layers, max_memory // max(per_layer, 1)))
    return [np.arange(i, min(i + size, n_layers)) for i in range(0, n_layers, size)]


def _fit_primal(
    batches: BatchFactory,
    n_layers: int,
    d: int,
    y: np.ndarray,
    fold: np.ndarray,
    alphas: np.ndarray,
    max_memory: int,
) -> dict[str, np.ndarray]:
    n, t = y.shape
    k = int(fold.max()) + 1
    a = len(alphas)
    out = _result(n_layers, k, d, t, a)
    # k fold moments per layer; layers are grouped so that the moments fit in max_memory (one pass
    # over the data per group: a single pass for all layers whenever they fit).
    for group in _layer_groups(n_layers, Moments.nbytes(k, 1, d, t), max_memory):
        mom: Moments | None = None
        for sl, block in batches(group):
            if mom is None:
                mom = Moments.zeros(k, len(group), d, t, shift=block[0].astype(np.float64))
            mom.add(block, y[sl], fold[sl])
        if mom is None:  # cannot happen: fit_probes checks n >= cv > 0 samples first
            raise RuntimeError("no rows were read")
        # Solutions per fold (trained without it) plus one on all data (index k), every alpha.
        solutions = [
            primal_fold_solutions(mom.n, mom.sx[:, j], mom.sy, mom.sxx[:, j], mom.sxy[:, j], alphas)
            for j in range(len(group))
        ]
        # Second pass: held-out residuals of each fold's model, training residuals of the full one.
        sse = np.zeros((len(group), k + 1, t, a))
        sae = np.zeros_like(sse)
        for sl, block in batches(group):
            ys, fs = y[sl], fold[sl]
            for j, (coefs, icepts) in enumerate(solutions):
                x = block[:, j].astype(np.float64) - mom.shift[j]
                for f in np.unique(fs):
                    sel = fs == f
                    pred = _apply(x[sel], coefs[f]) + icepts[f]
                    res = ys[sel][:, :, None] - pred
                    sse[j, f] += (res**2).sum(0)
                    sae[j, f] += np.abs(res).sum(0)
                pred = _apply(x, coefs[k]) + icepts[k]
                res = ys[:, :, None] - pred
                sse[j, k] += (res**2).sum(0)
                sae[j, k] += np.abs(res).sum(0)
        for j, layer in enumerate(group):
            coefs, icepts = solutions[j]
            nf = mom.n[:, None, None]
            out["cv_r2_fold"][layer] = r2_from_sums(
                sse[j, :k], mom.sy[:, :, None], mom.syy[:, :, None], nf
            )
            out["cv_mae_fold"][layer] = sae[j, :k] / nf
            out["train_r2"][layer] = r2_from_sums(
                sse[j, k], mom.sy.sum(0)[:, None], mom.syy.sum(0)[:, None], float(n)
            )
            out["train_mae"][layer] = sae[j, k] / n
            choice = _choose(out["cv_r2_fold"][layer])
            cols = np.arange(t)
            coef = coefs[k][:, cols, choice]  # (d, t)
            out["coef"][layer] = coef.T
            out["intercept"][layer] = icepts[k][cols, choice] - mom.shift[j] @ coef
            out["alpha_index"][layer] = choice
    return out


def fit_engine(
    batches: BatchFactory,
    *,
    n_layers: int,
    d: int,
    y: np.ndarray,
    fold: np.ndarray,
    alphas: np.ndarray,
    solver: str,
    max_memory: int,
) -> dict[str, np.ndarray]:
    """Cross-validate every alpha and refit the best, for every layer; see the module docstring."""
    if solver == "dual":
        return _fit_dual(batches, n_layers, d, y, fold, alphas)
    return _fit_primal(batches, n_layers, d, y, fold, alphas, max_memory)
