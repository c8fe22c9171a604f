"""One sentence per layer: does detection beat chance, judged from the numbers a result carries.

Rule, in order:

1. When the layer's summary row carries the permutation test of :func:`detect` (``beats_chance``,
   with ``p_value_corrected`` against shuffled-label probes and ``p_value_random_target_corrected``
   against random targets, Holm-corrected over layers; ``docs/significance.md``), that result
   decides: detection is claimed when ``beats_chance`` (both corrected p-values below the level),
   and the sentence gives both p-values.
2. Else, when the row carries a p-value (``p_value``; when present, ``p_value_corrected`` and
   ``p_correction`` name the multiple-layer correction), detection is claimed when the
   (corrected) p-value is below ``level`` (default 0.05), and not otherwise.
3. Without a p-value, the only evidence is the ordering of the mean minimum error against its two
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
        ``random_target_mean_min_error`` and, when the result has them, ``beats_chance``,
        ``p_value``, ``p_value_corrected``, ``p_value_random_target_corrected``,
        ``p_correction``, ``n_permutations`` and the null means
        ``shuffled_null_mean_min_error`` / ``random_null_mean_min_error``.
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
    if row.get("beats_chance") is not None:
        return _tested(row, level)
    p = _num(row, "p_value_corrected")
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


def _tested(row: Mapping[str, Any], level: float) -> tuple[str, str]:
    """Rule 1: the permutation test decides; both corrected p-values named."""
    layer = row.get("layer", "?")
    n = row.get("n_permutations")
    per = f"{n} " if n else ""
    how = f"{row.get('p_correction') or 'corrected'}-corrected"
    p_s, p_r = _num(row, "p_value_corrected"), _num(row, "p_value_random_target_corrected")
    null_s, null_r = (
        _num(row, "shuffled_null_mean_min_error"),
        _num(row, "random_null_mean_min_error"),
    )
    vs_s = f", mean {_g(null_s)}" if not math.isnan(null_s) else ""
    vs_r = f", mean {_g(null_r)}" if not math.isnan(null_r) else ""
    shuffled = (
        f"p = {p_s:.3g} against {per}shuffled-label probes{vs_s}"
        if not math.isnan(p_s)
        else "no p-value against shuffled-label probes (they could not be refitted)"
    )
    numbers = (
        f"mean minimum error {_g(_num(row, 'probe_mean_min_error'))}; {how} over layers, "
        f"{shuffled}, p = {p_r:.3g} against {per}random targets{vs_r}"
    )
    if math.isnan(p_s):  # no exact test without the shuffled-label refits
        return "not_detected", (
            f"Layer {layer}: detection is not shown to beat chance ({numbers}; the test needs "
            "both)."
        )
    if bool(row["beats_chance"]):
        return "detected", (f"Layer {layer}: detection beats chance ({numbers}; both < {level:g}).")
    return "not_detected", (
        f"Layer {layer}: detection does not beat chance ({numbers}; claimed only when both "
        f"are < {level:g})."
    )


def verdict_rows(
    rows: Sequence[Mapping[str, Any]], *, level: float = 0.05
) -> list[tuple[str, str]]:
    """:func:`layer_verdict` of every row, in order."""
    return [layer_verdict(r, level=level) for r in rows]
