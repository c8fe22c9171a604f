"""What ``actstore probe fit|show`` and ``actstore detect`` print (tables, the edge warning)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["print_detection", "print_metrics", "warn_edges"]


def _print_class_metrics(probes: Any) -> None:
    lin = probes.lineage
    group = f", folds grouped by {lin['group_by']!r}" if lin.get("group_by") else ""
    print(
        f"{lin['kind']} probes: classes {lin['classes']} of {lin['target']!r} in "
        f"{lin['prompt_set']!r} at {lin['position']!r}; {lin['n_samples']} samples from "
        f"{lin['n_prompts']} prompts, {lin['cv']}-fold CV{group}"
    )
    print(
        f"{'layer':>6} {'alpha':>9} {'cv_acc':>7} {'cv_bal':>7} {'cv_auc':>7} {'cv_logl':>8} "
        f"{'ctrl_acc':>8} {'ctrl_auc':>8}"
    )
    nan = float("nan")
    for m in probes.metrics():
        print(
            f"{m['layer']:>6} {m['alpha']:>9.3g} {m['cv_accuracy']:>7.4f} "
            f"{m['cv_balanced_accuracy']:>7.4f} {m['cv_roc_auc']:>7.4f} {m['cv_log_loss']:>8.4f} "
            f"{m.get('control_cv_accuracy', nan):>8.4f} {m.get('control_cv_roc_auc', nan):>8.4f}"
        )


def print_metrics(probes: Any) -> None:
    """The per-layer metrics table of ``actstore probe fit|show``."""
    if probes.kind != "ridge":
        return _print_class_metrics(probes)
    lin = probes.lineage
    print(
        f"probes: target {lin['target']!r} of prompt set {lin['prompt_set']!r} at "
        f"{lin['position']!r}; {lin['n_samples']} samples from {lin['n_prompts']} prompts, "
        f"{lin['cv']}-fold CV, solver {lin['solver']}"
    )
    print(
        f"{'layer':>6} {'alpha':>9} {'cv_r2':>8} {'cv_mae':>10} {'train_r2':>9} {'ctrl_r2':>8} "
        f"{'edge':>5}"
    )
    for m in probes.metrics():
        print(
            f"{m['layer']:>6} {m['alpha']:>9.3g} {m['cv_r2']:>8.4f} {m['cv_mae']:>10.4g} "
            f"{m['train_r2']:>9.4f} {m.get('control_cv_r2', float('nan')):>8.4f} "
            f"{m.get('alpha_at_edge') or '-':>5}"
        )


def warn_edges(probes: Any) -> None:
    """One line on stderr naming the layers whose alpha is still at an end of the grid."""
    rows = probes.metrics()
    edges = [(m["layer"], m["alpha_at_edge"]) for m in rows if m.get("alpha_at_edge")]
    if not edges:
        return
    where = ", ".join(f"{layer} ({edge})" for layer, edge in edges)
    if probes.kind == "ridge":
        how = (
            "after extending it to its bound (1e-8..1e6 x trace(C)/d); 'high' usually means no "
            "linear signal there"
        )
    else:
        how = f"(a {probes.kind} grid is not extended); widen --alphas beyond that end"
    print(
        f"actstore: warning: alpha is at an end of the searched grid in layer(s) {where} {how}",
        file=sys.stderr,
    )


def print_detection(result: Any, target: str, prompt_set: str) -> None:
    """The per-layer detection table, with p-values and one sentence per layer when present."""
    print(
        f"detection of {target!r} in {prompt_set!r} "
        f"(span {result.span!r}); mean minimum |error| per layer beside its controls:"
    )
    print(
        f"{'layer':>6} {'probe':>10} {'shuffled':>10} {'random_tgt':>10} {'hit_rate':>9} "
        f"{'ctrl_hit':>9} {'z':>6} {'p':>7} {'p_holm':>7} {'p_rand':>7}"
    )
    for r in result.summary():
        print(
            f"{r['layer']:>6} {r['probe_mean_min_error']:>10.4g} "
            f"{r['shuffled_probe_mean_min_error']:>10.4g} "
            f"{r['random_target_mean_min_error']:>10.4g} "
            f"{r.get('probe_hit_rate', float('nan')):>9.3f} "
            f"{r.get('random_target_hit_rate', float('nan')):>9.3f} {r['probe_mean_z']:>6.2f} "
            f"{r.get('p_value', float('nan')):>7.3g} "
            f"{r.get('p_value_corrected', float('nan')):>7.3g} "
            f"{r.get('p_value_random_target_corrected', float('nan')):>7.3g}"
        )
    print(f"best layer: {result.best_layer}")
    for sentence in result.conclusions():
        print(sentence)
