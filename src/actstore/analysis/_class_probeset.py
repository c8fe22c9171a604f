"""What a :class:`ProbeSet` of a classification kind reports and how detection applies it.

Detection statistic (binary probes only): each token gets a value on the scale of the class
index, compared with the prompt's class index (0 for ``classes[0]``, 1 for ``classes[1]``):

* ``logistic``: the predicted probability of ``classes[1]``;
* ``mean_diff``: the projection on the direction, rescaled so that the class-0 mean maps to 0 and
  the class-1 mean to 1 (``(x - midpoint) · w / (w · (mean1 - mean0)) + 0.5`` with the saved
  raw-space weights ``w``; the denominator is stored as ``score_gap (layer)``. Without
  standardisation ``w`` is the mean difference and this is ``|w|²``).

The detection error of a token is then ``|value - class index|``, as for a ridge probe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from actstore.analysis._class_metrics import METRICS
from actstore.errors import InvalidArgumentError

__all__ = [
    "class_metric_rows",
    "class_to_dict",
    "detection_link",
    "detection_target",
    "require_ridge",
]


def require_ridge(kind: str, what: str) -> None:
    """Refuse a classification probe (``kind``, a ``ProbeSet.kind``) where only R² figures exist.

    Raises
    ------
    InvalidArgumentError
        ``kind`` is not ``ridge``.
    """
    if kind != "ridge":
        raise InvalidArgumentError(
            f"expected ridge probes for {what} (it plots R²), got kind={kind!r}; use "
            "`actstore probe show` / ProbeSet.metrics() for classification metrics, and the "
            "detection figures (heatmaps, traces)"
        )


def _index(grid: np.ndarray, alpha: float) -> int:
    return int(np.argmin(np.abs(grid - alpha)))


def _layers(ds: xr.Dataset) -> list[int]:
    return [int(v) for v in ds["layer"].values]


def class_metric_rows(ds: xr.Dataset) -> list[dict[str, Any]]:
    """One row per layer: chosen alpha (``C = 1/alpha``), held-out metrics, training accuracy,
    and the shuffled control's held-out metrics, from a ``ProbeSet.dataset``."""
    grid = np.asarray(ds["alpha_grid"].values, dtype=np.float64)
    rows = []
    for i, layer in enumerate(_layers(ds)):
        a = _index(grid, float(ds["alpha"].values[i]))
        row: dict[str, Any] = {"layer": layer, "alpha": float(ds["alpha"].values[i])}
        # A searched grid (>= 2 alphas) whose best is an end of it is flagged (not extended).
        ends = {0: "low", len(grid) - 1: "high"} if len(grid) >= 2 else {}
        row["alpha_at_edge"] = ends.get(a)
        row.update({f"cv_{m}": float(ds[f"cv_{m}"].values[i, a]) for m in METRICS})
        row["train_accuracy"] = float(ds["train_accuracy"].values[i])
        if "control_coef" in ds:
            c = _index(grid, float(ds["control_alpha"].values[i]))
            for m in METRICS:
                row[f"control_cv_{m}"] = float(ds[f"control_cv_{m}"].values[i, c])
        rows.append(row)
    return rows


def class_to_dict(ds: xr.Dataset) -> dict[str, Any]:
    """JSON-ready lineage, metrics per layer, the classes and the log-loss by alpha, from a
    ``ProbeSet.dataset``."""
    return {
        "lineage": dict(ds.attrs["actstore_probe"]),
        "classes": [str(c) for c in ds["class"].values],
        "layers": class_metric_rows(ds),
        "alpha_grid": [float(a) for a in ds["alpha_grid"].values],
        "cv_log_loss_by_alpha": {
            str(layer): [float(v) for v in ds["cv_log_loss"].values[i]]
            for i, layer in enumerate(_layers(ds))
        },
    }


def detection_weights(ds: xr.Dataset, kind: str, control: bool) -> tuple[np.ndarray, np.ndarray]:
    """Linear score weights ``(layer, d_model)`` and ``(layer,)`` of a binary probe (see the
    module docstring); ``mean_diff`` comes rescaled, ``logistic`` needs :func:`detection_link`.

    Raises
    ------
    InvalidArgumentError
        A multiclass probe (detection compares one value per token with the label).
    """
    pre = "control_" if control else ""
    coef = np.asarray(ds[pre + "coef"].values, dtype=np.float64)
    icept = np.asarray(ds[pre + "intercept"].values, dtype=np.float64)
    if coef.shape[1] != 1:
        raise InvalidArgumentError(
            f"expected a binary classification probe for detection, got {ds.sizes['class']} "
            "classes; fit a binary probe (a two-valued label) to detect with"
        )
    w, b = coef[:, 0], icept[:, 0]
    if kind == "mean_diff":
        if pre + "score_gap" in ds:  # w . (mean1 - mean0) of the training rows, raw space
            norm = np.asarray(ds[pre + "score_gap"].values, dtype=np.float64)
        elif ds.attrs.get("actstore_probe", {}).get("standardize"):
            raise InvalidArgumentError(
                "expected standardised mean_diff probes with their class-mean score gap "
                "(score_gap), got probes saved without it; refit them with this version"
            )
        else:  # unstandardised: w is the mean difference itself
            norm = np.einsum("ld,ld->l", w, w)
        norm = np.where(norm > 0, norm, 1.0)
        return w / norm[:, None], b / norm + 0.5
    return w, b


def detection_link(kind: str, values: np.ndarray) -> np.ndarray:
    """Token values from linear scores: the sigmoid for ``logistic``, unchanged otherwise."""
    if kind == "logistic":
        from scipy.special import expit

        return expit(values).astype(values.dtype)
    return values


def detection_target(classes: np.ndarray, ds: xr.Dataset, target: str) -> np.ndarray:
    """Each prompt's class index ``(prompt,)`` as float64 (NaN: missing or another class).

    ``classes`` are the probe's classes (its ``class`` coordinate), ``ds`` the prompt set.

    Raises
    ------
    InvalidArgumentError
        The label is not a ``(prompt,)`` column, or none of its values is one of the classes.
    """
    classes = np.asarray(classes)
    if target not in ds.variables or ds[target].dims != ("prompt",):
        raise InvalidArgumentError(
            f"expected the probe's class label {target!r} as a (prompt,) column, got none; "
            "pass --target with the label the probe was fitted on"
        )
    values = np.asarray(ds[target].values)
    if classes.dtype.kind in "USOT" or values.dtype.kind in "USOT":
        values, classes = values.astype(str), classes.astype(str)
    out = np.full(len(values), np.nan)
    for i, c in enumerate(classes):
        out[values == c] = float(i)
    if not np.isfinite(out).any():
        raise InvalidArgumentError(
            f"expected {target!r} values among the probe's classes {classes.tolist()}, got none; "
            "pass the label the probe was fitted on"
        )
    return out
