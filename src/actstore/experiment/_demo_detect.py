"""The demo's detection tables: each detection block beside the others, for every model.

Part of the demo's ``results.md`` (see :mod:`actstore.experiment._demo_results`): the given worked
solutions and the model's own continuations side by side, with how many prompts of each have an
empty span (the tiny model often writes another number than the true v²; those prompts are left
out of the hit rate and counted, never dropped silently).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["coverage_lines", "detection_tables", "headline_detection"]


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:  # an undefined number (null in the results files)
        return "n/a"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.{digits}g}"
    return str(v)


def _table(rows: Sequence[Mapping[str, Any]], cols: Sequence[str] | None = None) -> str:
    if not rows:
        return "_(no rows)_\n"
    cols = list(cols or rows[0].keys())
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _detect_rows(runs: Mapping[str, Any], det: Any, probe: str) -> dict[str, dict[int, dict]]:
    """Per model: the detection summary rows of block ``det`` with ``probe``, by layer."""
    from actstore.experiment._detect_stage import results_name

    out = {}
    for model, run in runs.items():
        try:
            rows = run._read_json(results_name(det, probe)).get("layers", [])
        except FileNotFoundError:
            rows = []
        out[model] = {int(r["layer"]): r for r in rows}
    return out


def _coverage(
    runs: Mapping[str, Any], det: Any, probe: str, key: str = "span_coverage"
) -> dict[str, dict | None]:
    """Per model: ``span_coverage`` (or ``key``) of a detection's results file, else None."""
    from actstore.experiment._detect_stage import results_name

    out: dict[str, dict | None] = {}
    for model, run in runs.items():
        try:
            out[model] = run._read_json(results_name(det, probe)).get(key)
        except FileNotFoundError:
            out[model] = None
    return out


def _target_written(runs: Mapping[str, Any], det: Any, probe: str) -> str:
    """``; the true v_squared (span `v_squared`) is written in ...`` when that span is not the
    block's own (a generated set: how often the model wrote the true value), else ``""``."""
    counts = _coverage(runs, det, probe, "span_counts")
    parts = []
    for model, c in counts.items():
        k = (c or {}).get("with_span", {}).get(det.target)
        if k is None or det.span == det.target:
            return ""
        parts.append(f"{model} model {k} of {c['n_prompts']}")  # type: ignore[index]
    if not parts:
        return ""
    return f"; the true `{det.target}` (span `{det.target}`) is written in: " + "; ".join(parts)


def _block_label(det: Any) -> str:
    return det.name if det.name is not None else det.prompt_set


def _empty_text(cov: Mapping[str, Any] | None) -> str:
    if not cov:
        return "no span"
    return f"{cov['n_empty']} of {cov['n_scored']}"


def _num(row: Mapping[str, Any], key: str) -> float:
    v = row.get(key)
    return float(v) if isinstance(v, int | float) else math.nan


def _p_text(row: Mapping[str, Any]) -> str:
    """`` (Holm p shuffled-label 0.02, random target 0.5)`` when the row has p-values."""
    p_s, p_r = _num(row, "p_value_corrected"), _num(row, "p_value_random_target_corrected")
    if math.isnan(p_s) and math.isnan(p_r):
        return ""
    return f" (Holm p: shuffled-label {_fmt(p_s)}, random target {_fmt(p_r)})"


def _generated(runs: Mapping[str, Any], set_name: str) -> bool:
    cfg = next(iter(runs.values())).config
    return cfg.prompt_set(set_name).generate is not None


def detection_tables(runs: Mapping[str, Any], probe: str, blocks: Sequence[Any]) -> list[str]:
    """One table for every block detecting ``probe``: rows (layer, block), the blocks adjacent."""
    from actstore.analysis._verdict import VERDICTS, layer_verdict

    tables = {_block_label(det): _detect_rows(runs, det, probe) for det in blocks}
    models = list(runs)
    layers = sorted({k for t in tables.values() for m in t.values() for k in m})
    columns = {
        "min error": "probe_mean_min_error",
        "shuffled": "shuffled_probe_mean_min_error",
        "random": "random_target_mean_min_error",
        "hit rate": "probe_hit_rate",
    }
    # Permutation p-values (Holm-corrected over layers) when the runs have them.
    present = {k for t in tables.values() for m in t.values() for r in m.values() for k in r}
    if "p_value_corrected" in present:
        columns["p shuffled"] = "p_value_corrected"
        columns["p random"] = "p_value_random_target_corrected"
    elif "p_value" in present:
        columns["p"] = "p_value"
    rows: list[dict[str, Any]] = []
    sentences: dict[tuple[str, str], list[str]] = {(m, b): [] for m in models for b in tables}
    for layer in layers:
        for label, by_model in tables.items():
            row: dict[str, Any] = {"layer": layer, "text": label}
            for model in models:
                r = by_model.get(model, {}).get(layer, {})
                for header, key in columns.items():
                    row[f"{model} {header}"] = r.get(key, math.nan)
                key, sentence = layer_verdict(r) if r else ("unknown", "")
                row[f"{model} verdict"] = VERDICTS[key]
                if sentence:
                    sentences[(model, label)].append(f"- {sentence}")
            rows.append(row)
    out = [_table(rows)]
    for (model, label), lines in sentences.items():
        out += [f"Verdicts, {model} model, '{label}':\n", "\n".join(lines) + "\n"]
    return out


def coverage_lines(runs: Mapping[str, Any], probe: str, blocks: Sequence[Any]) -> list[str]:
    """One line per block: its prompt set, and how many prompts have an empty span per model."""
    lines = []
    for det in blocks:
        cov = _coverage(runs, det, probe)
        what = (
            "the model's own continuations"
            if _generated(runs, det.prompt_set)
            else "the given worked solutions"
        )
        empty = "; ".join(f"{m} model {_empty_text(c)}" for m, c in cov.items())
        lines.append(
            f"- '{_block_label(det)}': prompt set '{det.prompt_set}' ({what}); prompts whose span "
            f"`{det.span}` is empty (left out of the hit rate, counted in the min error): {empty}"
            f"{_target_written(runs, det, probe)}."
        )
    return lines


def headline_detection(runs: Mapping[str, Any]) -> list[str]:
    """Headline rows: each detection at the layer where its probe comes closest, both models."""
    from actstore.analysis._verdict import VERDICTS, layer_verdict
    from actstore.experiment._detect_stage import detected_pairs

    cfg = next(iter(runs.values())).config
    rows = []
    for det, probe in detected_pairs(cfg):
        by_model = _detect_rows(runs, det, probe)
        cov = _coverage(runs, det, probe)
        counts = _coverage(runs, det, probe, "span_counts")
        text = "own continuations" if _generated(runs, det.prompt_set) else "given text"
        row: dict[str, Any] = {"probe, text": f"'{probe}', {text} ('{det.prompt_set}')"}
        for model, table in by_model.items():
            finite = [r for r in table.values() if not math.isnan(_num(r, "probe_mean_min_error"))]
            if not finite:
                row[f"{model} model"] = "n/a"
                continue
            best = min(finite, key=lambda r: _num(r, "probe_mean_min_error"))
            row[f"{model} model"] = (
                f"{_fmt(_num(best, 'probe_mean_min_error'))} (shuffled "
                f"{_fmt(_num(best, 'shuffled_probe_mean_min_error'))}, random "
                f"{_fmt(_num(best, 'random_target_mean_min_error'))}) at layer {best['layer']}, "
                f"{VERDICTS[layer_verdict(best)[0]]}{_p_text(best)}; "
                f"span `{det.span}` empty in {_empty_text(cov.get(model))}"
            )
            c = counts.get(model) or {}
            k = c.get("with_span", {}).get(det.target)
            if k is not None and det.span != det.target:
                row[f"{model} model"] += f"; true `{det.target}` written in {k} of {c['n_prompts']}"
        rows.append(row)
    if not rows:
        return []
    targets = sorted({det.target for det in cfg.detect_blocks})
    return [
        f"Detection of `{'`, `'.join(targets)}`: mean min error at the layer where the probe "
        "comes closest, beside the shuffled-label probe and the random target at that layer, and "
        "that layer's verdict with its permutation p-values (Holm-corrected over layers), on the "
        "given worked solutions and on the model's own "
        "continuations (every layer below):\n",
        _table(rows),
    ]
