"""The fitting engine: cross-validated ridge for every layer from passes over row batches.

Input is a factory of row batches (``(sample_slice, rows (m, L, d) float32)``, see
:func:`._stats.iter_rows`), the targets ``Y (n, t)`` (column 0 the target, then controls) and
the fold ids.
Output is a dict of float64 arrays with a leading layer axis.

Numerics: the targets are centred on their mean first (R², MAE and the coefficients do not
change; the mean goes back into the intercepts), activations are centred batch by batch in
float64 (see :class:`._stats.Moments`), and predictions are formed as ``(x - mean_x) @ coef +
mean_y``, so a large common offset in either costs no precision. Held-out R² of a fold whose
targets are constant (:data:`._ridge.CONSTANT_RTOL`) is NaN, and ``fold_defined`` in the output
says which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from actstore.analysis._alphasearch import primal_spectrum, spectrum_range
from actstore.analysis._moments import Moments
from actstore.analysis._ridge import (
    dual_cv,
    dual_fit,
    fold_mean,
    primal_data_scale,
    primal_fold_solutions,
    r2_defined,
    r2_score,
    std_scale,
)
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
    """Index of the best mean held-out R² per target column: ``(fold, t, A)`` -> ``(t,)``.

    The mean is over the folds whose R² is defined; ties (e.g. none defined) go to the first alpha.
    """
    mean = np.nan_to_num(fold_mean(cv_r2, axis=0), nan=-np.inf)
    return np.argmax(mean, axis=-1)


def _check_finite(layer: int, *arrays: np.ndarray) -> None:
    if not all(np.isfinite(a).all() for a in arrays):
        raise InvalidArgumentError(
            f"expected finite activations, got NaN or inf in the selected rows of layer {layer}; "
            "check the cache with `actstore verify`, or fit other layers or positions"
        )


def _sst(y: np.ndarray) -> np.ndarray:
    """Sum of squares about the mean per column of ``y (n, t)`` -> ``(t, 1)``."""
    yc = y - y.mean(axis=0)
    return (yc * yc).sum(axis=0)[:, None]


def _result(n_layers: int, k: int, d: int, t: int, a: int) -> dict[str, np.ndarray]:
    return {
        "cv_r2_fold": np.empty((n_layers, k, t, a)),
        "cv_mae_fold": np.empty((n_layers, k, t, a)),
        "train_r2": np.empty((n_layers, t, a)),
        "train_mae": np.empty((n_layers, t, a)),
        "coef": np.empty((n_layers, t, d)),
        "intercept": np.empty((n_layers, t)),
        "alpha_index": np.empty((n_layers, t), dtype=np.int64),
        "alpha_values": np.empty((n_layers, a)),
        "data_scale": np.empty(n_layers),
        "eig_range": np.full((n_layers, 2), np.nan),
    }


def _fit_dual(
    batches: BatchFactory,
    n_layers: int,
    d: int,
    y: np.ndarray,
    fold: np.ndarray,
    alphas: np.ndarray,
    defined: np.ndarray,
    names: Sequence[int],
    relative: bool,
    standardize: bool,
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
        _check_finite(names[j], x)
        shift = x.mean(axis=0)
        x -= shift
        scale = std_scale(x.var(axis=0), shift, float(n)) if standardize else np.ones(d)
        xs = x / scale if standardize else x  # (x / 1 is x: no copy without standardising)
        gram = xs @ xs.T
        out["data_scale"][j] = np.trace(gram) / d
        if relative:  # the centred Gram's nonzero eigenvalues are those of X_c^T X_c
            out["eig_range"][j] = spectrum_range(gram)
        layer_alphas = alphas * (_base(out["data_scale"][j]) if relative else 1.0)
        out["alpha_values"][j] = layer_alphas
        rows_for_std = {"x": x, "shift": shift} if standardize else {}
        folds = dual_cv(gram, y, fold, layer_alphas, defined, **rows_for_std)
        out["cv_r2_fold"][j] = folds.r2
        out["cv_mae_fold"][j] = folds.mae
        # Refit on all rows for every alpha at once: training metrics beside the held-out ones.
        coef, intercept, pred = dual_fit(xs, gram, y, layer_alphas)
        if standardize:
            coef /= scale[:, None, None]
        resid = y[:, :, None] - pred
        out["train_mae"][j] = np.abs(resid).mean(axis=0)
        out["train_r2"][j] = r2_score((resid**2).sum(axis=0), _sst(y), True)
        choice = _choose(folds.r2)
        cols = np.arange(t)
        chosen = coef[:, cols, choice]  # (d, t)
        out["coef"][j] = chosen.T
        out["intercept"][j] = intercept[cols, choice] - shift @ chosen
        out["alpha_index"][j] = choice
    return out


def _base(scale: float) -> float:
    """What a relative grid multiplies: the layer's scale, or 1 where the rows do not vary."""
    return float(scale) if np.isfinite(scale) and scale > 0 else 1.0


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
    defined: np.ndarray,
    names: Sequence[int],
    relative: bool,
    standardize: bool,
) -> dict[str, np.ndarray]:
    n, t = y.shape
    k = int(fold.max()) + 1
    a = len(alphas)
    out = _result(n_layers, k, d, t, a)
    # k fold moments per layer; layers are grouped so that the moments fit in max_memory (one pass
    # over the data per group: a single pass for all layers whenever they fit).
    for group in _layer_groups(n_layers, Moments.nbytes(k, 1, d, t), max_memory):
        mom = Moments.zeros(k, len(group), d, t)
        for sl, block in batches(group):
            mom.add(block, y[sl], fold[sl])
        for j in range(len(group)):
            _check_finite(names[int(group[j])], mom.mx[:, j], mom.cxx[:, j])
        # Solutions per fold (trained without it) plus one on all data (index k), every alpha.
        solutions = []
        for j, layer in enumerate(group):
            scale = primal_data_scale(mom.n, mom.mx[:, j], mom.cxx[:, j], standardize)
            out["data_scale"][layer] = scale
            if relative:
                out["eig_range"][layer] = primal_spectrum(
                    mom.n, mom.mx[:, j], mom.cxx[:, j], standardize
                )
            out["alpha_values"][layer] = alphas * (_base(scale) if relative else 1.0)
            solutions.append(
                primal_fold_solutions(
                    mom.n,
                    mom.mx[:, j],
                    mom.my,
                    mom.cxx[:, j],
                    mom.cxy[:, j],
                    out["alpha_values"][layer],
                    standardize,
                )
            )
        # Second pass: held-out residuals of each fold's model, training residuals of the full one.
        sse = np.zeros((len(group), k + 1, t, a))
        sae = np.zeros_like(sse)
        for sl, block in batches(group):
            ys, fs = y[sl], fold[sl]
            for j, (coefs, mxs, mys) in enumerate(solutions):
                x = block[:, j].astype(np.float64)
                for f in np.unique(fs):
                    sel = fs == f
                    res = (ys[sel] - mys[f])[:, :, None] - _apply(x[sel] - mxs[f], coefs[f])
                    sse[j, f] += (res**2).sum(0)
                    sae[j, f] += np.abs(res).sum(0)
                res = (ys - mys[k])[:, :, None] - _apply(x - mxs[k], coefs[k])
                sse[j, k] += (res**2).sum(0)
                sae[j, k] += np.abs(res).sum(0)
        for j, layer in enumerate(group):
            coefs, mxs, mys = solutions[j]
            nf = mom.n[:, None, None]
            out["cv_r2_fold"][layer] = r2_score(
                sse[j, :k], mom.cyy[:, :, None], defined[:, :, None]
            )
            out["cv_mae_fold"][layer] = sae[j, :k] / nf
            out["train_r2"][layer] = r2_score(sse[j, k], _sst(y), True)
            out["train_mae"][layer] = sae[j, k] / n
            choice = _choose(out["cv_r2_fold"][layer])
            cols = np.arange(t)
            coef = coefs[k][:, cols, choice]  # (d, t)
            out["coef"][layer] = coef.T
            out["intercept"][layer] = mys[k] - mxs[k] @ coef
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
    layers: Sequence[int] | None = None,
    relative: bool = False,
    standardize: bool = False,
) -> dict[str, np.ndarray]:
    """Cross-validate every alpha and refit the best, for every layer; see the module docstring.

    The result also holds ``fold_defined (fold, t)``: whether fold ``f``'s held-out targets vary
    (its R² is NaN where not). ``layers`` name the layers in messages (default: positions).
    ``relative``: ``alphas`` are factors of each layer's ``data_scale`` (``trace(C) / d``, see
    :func:`._ridge.primal_data_scale`); ``alpha_values (layer, alpha)`` holds the penalties used,
    and ``eig_range (layer, 2)`` the smallest relevant and the largest eigenvalue of ``X_c^T X_c``
    (NaN unless ``relative``), from which :func:`._alphasearch.search_alphas` widens the grid.
    ``standardize``: z-score every column with the statistics of each training set (fold), as
    ``make_pipeline(StandardScaler(), Ridge())``; coefficients are returned for the raw rows.
    """
    names = list(range(n_layers)) if layers is None else list(layers)
    k = int(fold.max()) + 1
    defined = r2_defined(y, fold, k)
    y_mean = y.mean(axis=0)
    yc = y - y_mean
    if solver == "dual":
        out = _fit_dual(
            batches, n_layers, d, yc, fold, alphas, defined, names, relative, standardize
        )
    else:
        out = _fit_primal(
            batches,
            n_layers,
            d,
            yc,
            fold,
            alphas,
            max_memory,
            defined,
            names,
            relative,
            standardize,
        )
    out["intercept"] += y_mean
    out["fold_defined"] = defined
    return out
