"""Degenerate probe inputs: refuse what makes a whole probe meaningless, warn for the rest.

* a target with inf, or one that is constant over the samples (R² undefined for every metric):
  :class:`~actstore.errors.DegenerateTargetError`;
* prompts left out (label NaN, no token at the requested position):
  :class:`~actstore.errors.SampleLossWarning` naming the count and the reason;
* a fold whose held-out targets are constant (its R² undefined):
  :class:`~actstore.errors.UndefinedMetricWarning`, the fold's R² NaN;
* detection: prompts without a label or span token, z-scores of prompts whose token errors do
  not vary: a warning each, the statistics NaN.

"Constant" is decided exactly, by the spread ``max - min`` against
:data:`._ridge.CONSTANT_RTOL` times the largest absolute value, never by a rounded variance.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from actstore.analysis._ridge import CONSTANT_RTOL, varies
from actstore.errors import DegenerateTargetError, SampleLossWarning, UndefinedMetricWarning

__all__ = [
    "check_finite_target",
    "check_varies",
    "warn_detection_skipped",
    "warn_missing_labels",
    "warn_undefined_folds",
    "warn_undefined_z",
]


def _examples(idx: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    return shown + (", ..." if len(idx) > limit else "")


def check_finite_target(y: np.ndarray, what: str, unit: str = "prompts") -> None:
    """Refuse ``y`` holding ±inf (NaN means missing and is handled by the caller)."""
    bad = np.flatnonzero(np.isinf(y))
    if bad.size:
        raise DegenerateTargetError(
            f"expected finite values of {what}, got inf for {bad.size} of {len(y)} {unit} "
            f"(e.g. {_examples(bad)}); fix them, or set them to NaN to leave those {unit} out"
        )


def check_varies(y: np.ndarray, what: str, unit: str = "prompts") -> None:
    """Refuse a target ``y (n,)`` that is constant (spread <= CONSTANT_RTOL * max |y|)."""
    if len(y) == 0 or bool(varies(y[:, None], np.abs(y).max())[0]):
        return
    spread = float(np.ptp(y))
    how = "" if spread == 0 else f" to within {spread:.3g} (<= {CONSTANT_RTOL:g} of its scale)"
    raise DegenerateTargetError(
        f"expected a target that varies, got {what} constant at {float(y[0]):.6g}{how} for all "
        f"{len(y)} {unit}; R² and every probe metric are undefined there: pick a label that varies "
        "across these prompts"
    )


def warn_missing_labels(
    y: np.ndarray, what: str, then: str = "they are left out", stacklevel: int = 3
) -> None:
    """One warning naming how many prompts have no (NaN) label, and what happens to them."""
    missing = np.flatnonzero(np.isnan(y))
    if missing.size:
        warnings.warn(
            SampleLossWarning(
                f"{what} is missing (NaN) for {missing.size} of {len(y)} prompts "
                f"(e.g. prompts {_examples(missing)}); {then}"
            ),
            stacklevel=stacklevel,
        )


def warn_undefined_folds(defined: np.ndarray, names: Sequence[str]) -> None:
    """One warning per target column with folds whose held-out R² is undefined (constant targets).

    ``defined`` is ``(fold, t)``; ``names[c]`` describes column ``c``.
    """
    k = defined.shape[0]
    for c, name in enumerate(names):
        bad = np.flatnonzero(~defined[:, c])
        if not bad.size:
            continue
        rest = k - bad.size
        then = f"cv_r2 averages the other {rest}" if rest else "cv_r2 is NaN"
        warnings.warn(
            UndefinedMetricWarning(
                f"held-out R² is undefined in fold(s) {_examples(bad, 10)} of {k} for {name}: "
                f"the fold's held-out targets are constant; those folds are NaN and {then}"
            ),
            stacklevel=3,
        )


def warn_detection_skipped(
    y: np.ndarray, target: str, span: str | None, span_arr: np.ndarray | None, n_tokens: np.ndarray
) -> None:
    """Say which prompts detection could not score, and why (instead of numpy warnings)."""
    warn_missing_labels(
        y,
        f"label {target!r}",
        then="their statistics are NaN and left out of the summary",
        stacklevel=4,
    )
    if span_arr is None:
        return
    real = np.arange(span_arr.shape[1])[None, :] < n_tokens[:, None]
    lacking = np.flatnonzero(~(span_arr & real).any(axis=1) & np.isfinite(y))
    if lacking.size:
        shown = _examples(lacking)
        warnings.warn(
            SampleLossWarning(
                f"span {span!r} has no real token in {lacking.size} of {len(y)} prompts (e.g. "
                f"prompts {shown}); their span_error, span_rank and hit are NaN and the hit "
                "rates count the other prompts"
            ),
            stacklevel=3,
        )


def warn_undefined_z(z: np.ndarray, finite_target: np.ndarray) -> None:
    """``z (control, prompt, layer)``: warn when some scored rows have no z (errors all equal)."""
    undefined = np.isnan(z[0]) & finite_target[:, None]
    if undefined.any():
        prompts = np.flatnonzero(undefined.any(axis=1))
        shown = _examples(prompts)
        warnings.warn(
            UndefinedMetricWarning(
                f"z is undefined for {int(undefined.sum())} (prompt, layer) pairs of "
                f"{prompts.size} prompts (e.g. prompts {shown}): their token errors do not vary "
                "(a single real token, or all equal); z is NaN there and left out of mean_z"
            ),
            stacklevel=3,
        )
