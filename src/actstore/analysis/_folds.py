"""Fold assignment over prompts (plain or grouped by a label) and class labels for classifiers."""

from __future__ import annotations

import numpy as np
import xarray as xr

from actstore.analysis._ridge import kfold_assign
from actstore.analysis._scheduler import values as _values
from actstore.errors import InvalidArgumentError, UnknownNameError


def _some(values: np.ndarray, limit: int = 5) -> str:
    """The first ``limit`` values, with ``...`` when there are more (never a silent cut)."""
    shown = ", ".join(map(str, values[:limit]))
    return shown + (", ..." if len(values) > limit else "")


__all__ = ["MAX_CLASSES", "class_labels", "group_fold_assign", "prompt_folds"]

# A label with more distinct values than this is refused by the classification probes.
MAX_CLASSES = 50


def _prompt_column(ds: xr.Dataset, name: str, what: str) -> np.ndarray:
    if name not in ds.variables or ds[name].dims != ("prompt",):
        labels = sorted(
            str(v) for v in ds.data_vars if ds[v].dims == ("prompt",) and v != "n_tokens"
        )
        raise UnknownNameError(
            f"expected a label column of the prompt set ({', '.join(labels) or 'none'}) "
            f"{what}, got {name!r}; pass one of those"
        )
    return _values(ds[name])


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "USOT":
        return np.asarray([v is None or str(v) == "" for v in values], dtype=bool)
    return np.zeros(len(values), dtype=bool)


def group_fold_assign(values: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id of each item so that items with equal ``values`` share a fold.

    The same folds as ``GroupKFold(k, shuffle=True, random_state=seed)`` (scikit-learn >= 1.6):
    the distinct values (sorted) are permuted with ``RandomState(seed)`` and cut into ``k``
    consecutive runs (``numpy.array_split``), so each fold holds about ``1/k`` of the groups.
    """
    if k < 2:
        raise InvalidArgumentError(f"expected cv >= 2 folds, got {k}; pass cv=5 (or more)")
    unique, inverse = np.unique(values, return_inverse=True)
    if len(unique) < k:
        raise InvalidArgumentError(
            f"expected at least cv={k} distinct groups, got {len(unique)} "
            f"({_some(unique)}); use fewer folds or another --group-by label"
        )
    order = np.random.RandomState(seed).permutation(len(unique))
    group_fold = np.empty(len(unique), dtype=np.int64)
    for f, part in enumerate(np.array_split(order, k)):
        group_fold[part] = f
    return group_fold[inverse]


def prompt_folds(
    ds: xr.Dataset, prompts: np.ndarray, cv: int, seed: int, group_by: str | None
) -> np.ndarray:
    """Fold id ``(len(prompts),)`` of each selected prompt (positions along ``prompt``).

    ``group_by=None``: ``KFold(cv, shuffle=True, random_state=seed)`` over the prompts. Else the
    prompts are grouped by the label ``group_by`` (e.g. ``template``) with
    :func:`group_fold_assign`, so no group is on both sides of a split.

    Raises
    ------
    UnknownNameError
        ``group_by`` is not a ``(prompt,)`` label.
    InvalidArgumentError
        A selected prompt lacks a ``group_by`` value, or fewer groups than folds.
    """
    if group_by is None:
        return kfold_assign(len(prompts), cv, seed)
    values = _prompt_column(ds, group_by, "to group folds by")[prompts]
    lost = _missing(values)
    if lost.any():
        raise InvalidArgumentError(
            f"expected a {group_by!r} value for every selected prompt, got {int(lost.sum())} "
            f"missing (e.g. prompts {', '.join(map(str, prompts[lost][:5]))}); fill the label "
            "or group by another"
        )
    return group_fold_assign(values, cv, seed)


def class_labels(ds: xr.Dataset, target: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Classes ``(class,)`` of the label ``target`` and each prompt's class index ``(prompt,)``
    (-1 where missing: NaN or the empty string).

    Numeric labels must be integers (a continuous label is refused); at most
    :data:`MAX_CLASSES` classes, at least two, each with at least two prompts.

    Raises
    ------
    UnknownNameError
        ``target`` is not a ``(prompt,)`` label.
    InvalidArgumentError
        Non-integer numbers, one class, too many classes, a class with one prompt, or (for
        ``mean_diff``) more than two classes.
    """
    values = _prompt_column(ds, target, f"to classify with kind={kind!r}")
    missing = _missing(values)
    kept = values[~missing]
    if values.dtype.kind == "f":
        frac = kept[kept != np.round(kept)]
        if frac.size:
            raise InvalidArgumentError(
                f"expected a categorical label (integers or strings) for kind={kind!r}, got "
                f"non-integer values in {target!r} (e.g. {frac[0]!r}); use kind='ridge' for "
                "a continuous target"
            )
        kept = kept.astype(np.int64)
    elif values.dtype.kind in "USOT":
        kept = kept.astype(str)
    classes, idx, counts = np.unique(kept, return_inverse=True, return_counts=True)
    if len(classes) > MAX_CLASSES:
        raise InvalidArgumentError(
            f"expected at most {MAX_CLASSES} classes for kind={kind!r}, got {len(classes)} "
            f"distinct values of {target!r}; use kind='ridge' for a continuous target or a "
            "coarser label"
        )
    if len(classes) < 2:
        raise InvalidArgumentError(
            f"expected at least 2 classes in {target!r}, got {len(classes)}; "
            "a classification probe needs prompts of two or more classes"
        )
    if kind == "mean_diff" and len(classes) != 2:
        raise InvalidArgumentError(
            f"expected 2 classes for kind='mean_diff', got {len(classes)} in {target!r}; "
            "use kind='logistic' for multiclass labels"
        )
    single = classes[counts < 2]
    if single.size:
        raise InvalidArgumentError(
            f"expected at least 2 prompts per class of {target!r}, got one prompt in class(es) "
            f"{_some(single)}; drop the class or add prompts"
        )
    out = np.full(len(values), -1, dtype=np.int64)
    out[~missing] = idx
    return classes, out
