"""Classification probes from a cache: ``kind="logistic"`` and ``kind="mean_diff"``.

Memory rule: the selected rows are held in memory as float32, for as many layers at a time as fit
in ``max_memory`` (``4 * samples * d_model`` bytes per layer, plus ``8 * samples * d_model`` for
the float64 copy of the layer being solved); layers are read in groups, one pass over the data per
group. A single layer whose rows exceed ``max_memory`` is refused (select fewer positions or raise
``max_memory``). Nothing else of the cache is held.

Cross-validation: for every layer, fold and alpha (``C = 1 / alpha``) a probe is fitted on the
training prompts and scored on the held-out ones (:mod:`._class_metrics`); the alpha with the
lowest mean held-out log-loss is refitted on all samples. ``mean_diff`` has no penalty (its alpha
grid is ``[0]``). The shuffled control is the same fit on class labels permuted across prompts.

Alpha grid: ``alphas=None`` is :data:`DEFAULT_CLASS_ALPHAS` (scikit-learn's default ``C = 1``,
no search). A searched grid is not extended (each extra alpha costs ``cv + 1`` L-BFGS fits per
layer), but a layer whose best alpha is the smallest or largest of the grid is flagged
``alpha_at_edge`` (``"low"``/``"high"``), as ridge layers still at an edge after extension are.

Standardisation (``standardize=True``): each fold's rows are divided by the per-column standard
deviation of its training rows (:func:`._ridge.std_scale`, as ``StandardScaler`` fitted inside
the fold; the centring is absorbed by the unpenalised intercept), and the refit uses all rows'
scale; coefficients are saved for raw rows (``coef / scale``), so detection applies them as is.
This equals ``make_pipeline(StandardScaler(), LogisticRegression(C=1/alpha))`` and
``make_pipeline(StandardScaler(), MeanDiffProbe())``.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from actstore._version import __version__
from actstore.analysis._class_metrics import METRICS, fold_metrics
from actstore.analysis._data import SetSource, select_positions
from actstore.analysis._degenerate import _examples
from actstore.analysis._folds import class_labels, prompt_folds
from actstore.analysis._positions import row_source
from actstore.analysis._ridge import std_scale
from actstore.analysis._stats import iter_rows
from actstore.errors import InvalidArgumentError, UndefinedMetricWarning

__all__ = ["DEFAULT_CLASS_ALPHAS", "KINDS", "fit_class_probes"]

KINDS = ("ridge", "logistic", "mean_diff")
#: The grid of ``alphas=None`` for classification kinds: ``C = 1`` (scikit-learn's default).
DEFAULT_CLASS_ALPHAS = np.ones(1)


def _scale(x: np.ndarray, standardize: bool) -> np.ndarray:
    """Per-column divisor ``(d,)``: the rows' ``StandardScaler`` scale, or ones."""
    if not standardize:
        return np.ones(x.shape[1])
    return std_scale(x.var(axis=0), x.mean(axis=0), float(x.shape[0]))


def _layer_groups(n_layers: int, n: int, d: int, max_memory: int) -> list[np.ndarray]:
    per_layer = 4 * n * d
    if per_layer + 8 * n * d > max_memory:
        raise InvalidArgumentError(
            f"expected the selected rows of one layer ({n} samples x d_model {d}: "
            f"{(12 * n * d) / 2**20:.1f} MiB with the float64 copy) within max_memory "
            f"{max_memory / 2**20:.1f} MiB, got more; raise max_memory or select fewer positions"
        )
    size = max(1, min(n_layers, (max_memory - 8 * n * d) // per_layer))
    return [np.arange(i, min(i + size, n_layers)) for i in range(0, n_layers, size)]


def _fit_one(kind: str, x: np.ndarray, yi: np.ndarray, k: int, alpha: float, init: Any) -> Any:
    # The solvers import scikit-learn and scipy.optimize: only a classification fit pays for them
    # (``fit_probes`` imports this module for ridge fits too).
    from actstore.analysis._logistic import logistic_fit
    from actstore.analysis._mean_diff import mean_diff_fit

    if kind == "mean_diff":
        direction, intercept = mean_diff_fit(x, yi)
        return direction[None, :], np.array([intercept])
    w, b, _ = logistic_fit(x, yi, k, alpha, init=init)
    return w, b


def _scores(kind: str, x: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> tuple:
    """Predicted class indices, the score for ROC AUC, the probabilities (or ``None``)."""
    if kind == "mean_diff":
        score = x @ coef[0] + intercept[0]
        return (score > 0).astype(np.int64), score, None
    from actstore.analysis._logistic import logistic_proba

    proba = logistic_proba(x, coef, intercept)
    return np.argmax(proba, axis=1), (proba[:, 1] if proba.shape[1] == 2 else proba), proba


def _fit_layer(
    kind: str,
    x: np.ndarray,
    yi: np.ndarray,
    k: int,
    fold: np.ndarray,
    alphas: np.ndarray,
    standardize: bool = False,
) -> dict[str, Any]:
    n_folds = int(fold.max()) + 1
    folds = {m: np.full((n_folds, len(alphas)), np.nan) for m in METRICS}
    # Strongest penalty first: each fit starts from the previous alpha's solution of its fold.
    order = np.argsort(alphas)[::-1]
    for f in range(n_folds):
        train, test = fold != f, fold == f
        scale = _scale(x[train], standardize)  # the scaler is fitted inside the training fold
        x_train, x_test = x[train] / scale, x[test] / scale
        init = None
        for a in order:
            init = _fit_one(kind, x_train, yi[train], k, float(alphas[a]), init)
            pred, score, proba = _scores(kind, x_test, *init)
            for m, v in fold_metrics(yi[test], pred, score, proba).items():
                folds[m][f, a] = v
    with np.errstate(invalid="ignore"):
        loss = np.nanmean(folds["log_loss"], axis=0) if kind == "logistic" else np.zeros(1)
    best = int(np.nanargmin(loss)) if np.isfinite(loss).any() else 0
    scale = _scale(x, standardize)
    coef, intercept = _fit_one(kind, x / scale, yi, k, float(alphas[best]), None)
    coef = coef / scale  # for raw rows: (x / scale) @ w == x @ (w / scale)
    train_pred = _scores(kind, x, coef, intercept)[0]
    # Raw-space score gap between the class means: detection's mean-diff scale (|w|^2 only
    # without standardisation, where w is the mean difference itself).
    gap = float(coef[0] @ (x[yi == 1].mean(axis=0) - x[yi == 0].mean(axis=0)))
    return {
        "folds": folds,
        "best": best,
        "coef": coef,
        "intercept": intercept,
        "score_gap": gap,
        "train_accuracy": float((train_pred == yi).mean()),
    }


def _check_folds(yi: np.ndarray, fold: np.ndarray, classes: np.ndarray, target: str) -> None:
    for f in range(int(fold.max()) + 1):
        absent = np.setdiff1d(np.arange(len(classes)), yi[fold != f])
        if absent.size:
            raise InvalidArgumentError(
                f"expected every class of {target!r} in each training fold, got class "
                f"{classes[absent[0]]!r} only in held-out fold {f}; use fewer folds, more "
                "prompts of that class, or another --group-by"
            )


def _warn_one_class_folds(yi: np.ndarray, fold: np.ndarray, what: str) -> None:
    """Warn (like ridge's undefined fold R²) when held-out folds hold a single class: their ROC
    AUC is NaN (scikit-learn raises there) and ``cv_roc_auc`` averages the other folds."""
    k = int(fold.max()) + 1
    bad = np.flatnonzero([np.unique(yi[fold == f]).size < 2 for f in range(k)])
    if bad.size:
        rest = k - bad.size
        then = f"cv_roc_auc averages the other {rest}" if rest else "cv_roc_auc is NaN"
        warnings.warn(
            UndefinedMetricWarning(
                f"held-out ROC AUC is undefined in {bad.size} of {k} folds (fold(s) "
                f"{_examples(bad, 10)}) for {what}: those folds hold one class; they are NaN "
                f"and {then} (use fewer folds)"
            ),
            stacklevel=4,
        )


def _fold_mean(a: np.ndarray) -> np.ndarray:
    """Mean over folds of the defined values (NaN where no fold has one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=0)


def fit_class_probes(
    src: SetSource,
    *,
    kind: str,
    hook: str,
    layers: Sequence[int],
    layer_pos: np.ndarray,
    target: str,
    position: str,
    alphas: np.ndarray,
    cv: int,
    seed: int,
    control: str,
    group_by: str | None,
    max_memory: int,
    scheduler: str | None,
    standardize: bool = False,
) -> xr.Dataset:
    """Fit one classification probe per layer: the ``ProbeSet`` dataset, lineage in its attrs.

    See the module docstring for the memory rule and the cross-validation.
    """
    ds = src.ds
    classes, label = class_labels(ds, target, kind)
    prompt, token = select_positions(ds, position, np.flatnonzero(label >= 0))
    groups, inverse = np.unique(prompt, return_inverse=True)
    fold = prompt_folds(ds, groups, cv, seed, group_by)[inverse]
    ys = [label[prompt]]
    if control == "shuffle":
        perm = np.random.default_rng(seed).permutation(len(groups))
        ys.append(label[groups[perm]][inverse])
    for yi, what in zip(ys, [f"label {target!r}", f"the shuffled control of {target!r}"]):
        _check_folds(yi, fold, classes, target)
        _warn_one_class_folds(yi, fold, what)
    if kind == "mean_diff":
        alphas = np.zeros(1)
    n, d, k = len(prompt), int(ds.sizes["d_model"]), len(classes)
    n_layers = len(layers)
    rows_k = 1 if k == 2 else k
    prefixes = ["", "control_"][: len(ys)]
    data: dict[str, Any] = {}
    for pre in prefixes:
        data[pre + "coef"] = np.empty((n_layers, rows_k, d))
        data[pre + "intercept"] = np.empty((n_layers, rows_k))
        data[pre + "alpha"] = np.empty(n_layers)
        data[pre + "train_accuracy"] = np.empty(n_layers)
        data[pre + "score_gap"] = np.empty(n_layers)
        for m in METRICS:
            data[f"{pre}cv_{m}_fold"] = np.empty((cv, n_layers, len(alphas)))
    rs = row_source(src, hook, position, prompt, token)  # materialised positions when stored
    for group in _layer_groups(n_layers, n, d, max_memory):
        rows = np.empty((n, len(group), d), dtype=np.float32)
        for sl, block in iter_rows(
            rs.act, layer_pos[group], prompt, rs.token, scheduler=scheduler, unit=rs.unit
        ):
            rows[sl] = block
        for j, layer in enumerate(group):
            x = rows[:, j].astype(np.float64)
            if not np.isfinite(x).all():
                raise InvalidArgumentError(
                    f"expected finite activations, got NaN or inf in the selected rows of layer "
                    f"{layers[layer]}; check the cache with `actstore verify`"
                )
            for pre, yi in zip(prefixes, ys):
                res = _fit_layer(kind, x, yi, k, fold, alphas, standardize)
                data[pre + "coef"][layer] = res["coef"]
                data[pre + "intercept"][layer] = res["intercept"]
                data[pre + "alpha"][layer] = alphas[res["best"]]
                data[pre + "train_accuracy"][layer] = res["train_accuracy"]
                data[pre + "score_gap"][layer] = res["score_gap"]
                for m in METRICS:
                    data[f"{pre}cv_{m}_fold"][:, layer] = res["folds"][m]
    variables: dict[str, Any] = {}
    for pre in prefixes:
        variables[pre + "coef"] = (("layer", "coef_row", "d_model"), data[pre + "coef"])
        variables[pre + "intercept"] = (("layer", "coef_row"), data[pre + "intercept"])
        variables[pre + "alpha"] = (("layer",), data[pre + "alpha"])
        variables[pre + "train_accuracy"] = (("layer",), data[pre + "train_accuracy"])
        if kind == "mean_diff":
            variables[pre + "score_gap"] = (("layer",), data[pre + "score_gap"])
        for m in METRICS:
            folds = data[f"{pre}cv_{m}_fold"]
            variables[f"{pre}cv_{m}_fold"] = (("fold", "layer", "alpha_grid"), folds)
            variables[f"{pre}cv_{m}"] = (("layer", "alpha_grid"), _fold_mean(folds))
    coords = {
        "layer": np.asarray(layers, dtype=np.int64),
        "alpha_grid": alphas,
        "fold": np.arange(cv),
        "class": classes,
    }
    lineage = {
        "kind": kind,
        "prompt_set": src.prompt_set,
        "target": target,
        "position": position,
        "layers": list(layers),
        "hook": hook,
        "d_model": d,
        "cv": cv,
        "seed": seed,
        "group_by": group_by,
        "control": control,
        "classes": [c.item() if hasattr(c, "item") else c for c in classes],
        "solver": "lbfgs" if kind == "logistic" else "closed-form",
        "standardize": bool(standardize),
        "n_samples": n,
        "n_prompts": len(groups),
        "cache_url": src.url,
        "cache_fingerprint": src.digest,
        "model_fingerprint": src.model_fingerprint,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "actstore_version": __version__,
    }
    return xr.Dataset(variables, coords=coords, attrs={"actstore_probe": lineage})
