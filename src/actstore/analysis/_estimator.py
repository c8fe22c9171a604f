"""The scikit-learn estimator contract shared by the in-memory probes.

:class:`~actstore.analysis.RidgeProbe`, :class:`~actstore.analysis.LogisticProbe` and
:class:`~actstore.analysis.MeanDiffProbe` inherit ``sklearn.base.BaseEstimator`` and the fitting
mixin (``RegressorMixin`` / ``ClassifierMixin``), so ``clone``, ``get_params``/``set_params``,
``score``, ``Pipeline``, ``cross_val_score`` and ``GridSearchCV`` work on them. Input checks go
through ``sklearn.utils.validation.validate_data`` (``n_features_in_``, the messages scikit-learn
users know), and ``predict`` before ``fit`` raises ``sklearn.exceptions.NotFittedError``.

scikit-learn is imported inside the functions that call it: the plain argument checks
(:func:`check_bool`, :func:`check_cv`, ...) are also used by :func:`fit_probes`, whose fresh
process should not pay for importing scikit-learn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from actstore.errors import InvalidArgumentError

__all__ = [
    "check_bool",
    "check_cv",
    "check_positive",
    "check_whole",
    "check_x",
    "classification_input",
    "kfold_ids",
    "regression_input",
]

_FLOATS = [np.float64, np.float32]
_FIX = "pass one row of activations per sample"


@contextlib.contextmanager
def _one_line(expected: str, fix: str) -> Iterator[None]:
    """scikit-learn's ``ValueError`` as an :class:`InvalidArgumentError` (still a ``ValueError``)
    in the house format, its text kept (on one line) so scikit-learn's own checks still match."""
    try:
        yield
    except InvalidArgumentError:
        raise
    except ValueError as exc:
        got = " ".join(str(exc).split())
        raise InvalidArgumentError(f"expected {expected}, got: {got}; {fix}") from exc


def _enough(n: int, cv: int | None) -> None:
    need = max(2, cv or 2)
    if n < need:
        raise InvalidArgumentError(
            f"expected at least {need} samples (cv={cv}), got n_samples={n}; "
            "pass more samples or fewer folds"
        )


def regression_input(
    est: Any, x: Any, y: Any, cv: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``x (sample, d_model)`` float and ``y (sample,)`` float64; sets
    ``n_features_in_``.

    Raises
    ------
    InvalidArgumentError
        (a ``ValueError``) with scikit-learn's message inside: NaN/inf, wrong dimensions, ``y``
        None, inconsistent lengths; fewer samples than folds (naming ``n_samples``).
    """
    from sklearn.utils.validation import validate_data

    with _one_line("x (sample, d_model) and y (sample,) of finite numbers", _FIX):
        x, y = validate_data(est, x, y, dtype=_FLOATS, y_numeric=True)
    _enough(x.shape[0], cv)
    return x, np.asarray(y, dtype=np.float64)


def classification_input(
    est: Any, x: Any, y: Any, *, binary: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``x (sample, d_model)`` and class indices ``(sample,)``; sets ``classes_`` and
    ``n_features_in_``.

    Raises
    ------
    InvalidArgumentError
        (a ``ValueError``) scikit-learn's messages for bad ``x``/``y``, a continuous ``y``
        ("Unknown label type"); one class only, or (``binary``) more than two classes.
    """
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import validate_data

    with _one_line("x (sample, d_model) of finite numbers and class labels y (sample,)", _FIX):
        x, y = validate_data(est, x, y, dtype=_FLOATS)
        check_classification_targets(y)
    classes, idx = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise InvalidArgumentError(
            f"expected at least 2 classes in y, got 1 class ({classes[0]!r}); "
            "a classifier needs samples of two or more classes"
        )
    if binary and len(classes) > 2:
        raise InvalidArgumentError(
            f"expected 2 classes for a mean-difference probe, got {len(classes)}; use "
            "kind='logistic' for multiclass labels (Only binary classification is supported.)"
        )
    est.classes_ = classes
    return x, idx.astype(np.int64)


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool; refuses anything else (``bool("no")`` is True: no silent cast).

    Raises
    ------
    InvalidArgumentError
        Not a ``bool`` / ``numpy.bool_``.
    """
    if not isinstance(value, bool | np.bool_):
        raise InvalidArgumentError(
            f"expected {name} True or False, got {value!r}; pass {name}=True or {name}=False"
        )
    return bool(value)


def check_whole(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int ``>= minimum`` (a bool or a float is refused).

    Raises
    ------
    InvalidArgumentError
        Not a whole number ``>= minimum``.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        ok = False
    else:
        ok = int(value) >= minimum
    if not ok:
        raise InvalidArgumentError(
            f"expected {name} a whole number >= {minimum}, got {value!r}; pass e.g. "
            f"{name}={max(minimum, 5)}"
        )
    return int(value)


def check_cv(value: Any) -> int:
    """The number of folds: a whole number >= 2 (a bool, float or string is refused).

    Raises
    ------
    InvalidArgumentError
        Anything else.
    """
    whole = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if not whole or value < 2:
        raise InvalidArgumentError(f"expected cv >= 2 folds, got {value!r}; pass cv=5 (or more)")
    return int(value)


def check_positive(name: str, value: Any) -> float:
    """``value`` as a finite float ``> 0`` (a bool is refused).

    Raises
    ------
    InvalidArgumentError
        Not a finite real number ``> 0``.
    """
    real = isinstance(value, int | float | np.integer | np.floating)
    if isinstance(value, bool | np.bool_) or not real or not (np.isfinite(value) and value > 0):
        raise InvalidArgumentError(
            f"expected {name} a finite number > 0, got {value!r}; pass e.g. {name}=1.0"
        )
    return float(value)


def check_x(est: Any, x: Any) -> np.ndarray:
    """``x`` validated against the fitted estimator (``NotFittedError`` before ``fit``)."""
    from sklearn.utils.validation import check_is_fitted, validate_data

    check_is_fitted(est)
    with _one_line(f"x (sample, {est.n_features_in_}) of finite numbers", _FIX):
        return validate_data(est, x, dtype=_FLOATS, reset=False)


def kfold_ids(n: int, k: int, random_state: Any) -> np.ndarray:
    """Fold id of each of ``n`` items as ``KFold(k, shuffle=True, random_state=random_state)``.

    ``random_state`` is scikit-learn's: an int, ``None`` or a ``numpy.random.RandomState``.
    """
    from sklearn.utils import check_random_state

    k = check_cv(k)
    order = np.arange(n)
    check_random_state(random_state).shuffle(order)
    sizes = np.full(k, n // k, dtype=np.int64)
    sizes[: n % k] += 1
    fold = np.empty(n, dtype=np.int64)
    fold[order] = np.repeat(np.arange(k), sizes)
    return fold
