"""One sentence per layer: does detection beat chance, judged from the numbers a result carries.

Rule, in order:

1. When the layer's summary row carries a permutation p-value (``p_value``; when present,
   ``p_value_adjusted`` and ``p_correction`` name the multiple-layer correction), detection is
   claimed when the (adjusted) p-value is below ``level`` (default 0.05), and not otherwise.
2. Without a p-value, the only evidence is the ordering of the mean minimum error against its two
   controls (the shuffled-label probe and a random in-range target). If either control comes as
   close to the target as the probe or closer, detection is **not** shown. If the probe is closer
   than both, the sentence says so and that no significance test was run: a lower number alone is
   not a claim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["VERDICTS", "layer_verdict", "verdict_rows"]

#: Short verdict labels (the ``verdict`` column of the tables).
VERDICTS = {
    "detected": "beats chance",
    "not_detected": "not above chance",
    "untested": "below both controls, untested",
    "unknown": "no numbers",
}


def _num(row: Mapping[str, Any], key: str) -> float:
    v = row.get(key)
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _g(v: float) -> str:
    return f"{v:.3g}"


def layer_verdict(row: Mapping[str, Any], *, level: float = 0.05) -> tuple[str, str]:
    """``(key, sentence)`` for one per-layer detection summary row (see the module's rule).

    Parameters
    ----------
    row : mapping
        One row of ``DetectionResult.summary()`` (or the ``layers`` list of its JSON): ``layer``,
        ``probe_mean_min_error``, ``shuffled_probe_mean_min_error``,
        ``random_target_mean_min_error`` and, when the result has them, ``p_value``,
        ``p_value_adjusted``, ``p_correction``, ``n_permutations``.
    level : float
        Significance level for the p-value rule.

    Returns
    -------
    tuple of (str, str)
        The key (one of :data:`VERDICTS`) and one sentence naming the numbers it rests on.
    """
    layer = row.get("layer", "?")
    probe = _num(row, "probe_mean_min_error")
    shuffled = _num(row, "shuffled_probe_mean_min_error")
    random = _num(row, "random_target_mean_min_error")
    p = _num(row, "p_value_adjusted")
    adjusted = not math.isnan(p)
    if not adjusted:
        p = _num(row, "p_value")
    if not math.isnan(p):
        how = ""
        if adjusted:
            how = f", {row.get('p_correction') or 'corrected'} over layers"
        n = row.get("n_permutations")
        how += f", {n} permutations" if n else ""
        if p < level:
            return "detected", (
                f"Layer {layer}: detection beats chance (p = {p:.3g}{how} < {level:g}); "
                f"mean minimum error {_g(probe)}."
            )
        return "not_detected", (
            f"Layer {layer}: detection does not beat chance (p = {p:.3g}{how} >= {level:g}); "
            f"mean minimum error {_g(probe)}."
        )
    if math.isnan(probe):
        return "unknown", f"Layer {layer}: no detection numbers."
    controls = [(n, v) for n, v in (("shuffled-label probe", shuffled), ("random target", random))]
    known = [(n, v) for n, v in controls if not math.isnan(v)]
    closer = [(n, v) for n, v in known if v <= probe]
    if closer:
        said = " and ".join(f"the {n} ({_g(v)})" for n, v in closer)
        return "not_detected", (
            f"Layer {layer}: not above chance: {said} "
            f"{'come' if len(closer) > 1 else 'comes'} as close to the target as the probe "
            f"({_g(probe)}) or closer."
        )
    if not known:
        return "unknown", (
            f"Layer {layer}: mean minimum error {_g(probe)} with no control to compare it with."
        )
    said = " and ".join(f"{n} {_g(v)}" for n, v in known)
    return "untested", (
        f"Layer {layer}: the probe comes closer ({_g(probe)}) than its controls ({said}), "
        "but no significance test was run, so chance is not excluded."
    )


def verdict_rows(
    rows: Sequence[Mapping[str, Any]], *, level: float = 0.05
) -> list[tuple[str, str]]:
    """:func:`layer_verdict` of every row, in order."""
    return [layer_verdict(r, level=level) for r in rows]
