"""Per-layer figures of an experiment; the per-token ones are in ``_tokenplots`` (matplotlib is
imported inside each function, Agg for files).

Each function returns the ``matplotlib.figure.Figure`` (shown inline in a notebook) and, given
``path``, also saves it as PNG.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actstore.analysis._class_probeset import require_ridge
from actstore.errors import UnknownNameError

if TYPE_CHECKING:
    from actstore.analysis._detect_result import DetectionResult
    from actstore.analysis._probeset import ProbeSet

__all__ = ["plot_alpha_curves", "plot_layer_summary"]


def _pyplot() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg",) and not _interactive():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _interactive() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _finish(fig: Any, path: str | Path | None, *, tight: bool = True) -> Any:
    if tight:
        fig.tight_layout()
    if path is not None:
        from actstore._locations import location_errors

        with location_errors(str(path), "write"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110, bbox_inches="tight")
        if not _interactive():
            _pyplot().close(fig)
    return fig


def _prompt_positions(result: DetectionResult, prompts: Sequence[int] | None, n: int) -> list[int]:
    """Rows of the prompts labelled *prompts*; a negative one counts from the end (-1: last)."""
    labels = [int(v) for v in result.tokens["prompt"].values]
    if prompts is None:
        return list(range(min(n, len(labels))))
    rows = []
    for p in prompts:
        if int(p) < 0 and -len(labels) <= int(p):
            rows.append(len(labels) + int(p))
        elif int(p) in labels:
            rows.append(labels.index(int(p)))
        else:
            raise UnknownNameError(
                f"expected prompt labels of the detection result ({labels[0]}..{labels[-1]}, "
                f"{len(labels)} prompts, or -1 for the last), got {int(p)}; pass labels from "
                "result.tokens['prompt']"
            )
    return rows


def plot_layer_summary(
    probes: ProbeSet, result: DetectionResult | None = None, *, path: str | Path | None = None
) -> Any:
    """(3) Per layer: probe CV R² (and the shuffled control), detection error beside its controls.

    Left: held-out R² at the chosen alpha, training R² as a tick, shuffled-label control hatched.
    Right: mean minimum error over prompts (the reference's number) with bars for the
    shuffled-label probe and the random in-range target: the chance band it must beat.

    Parameters
    ----------
    probes : ProbeSet
        Ridge probes, one per layer (``probes.metrics()`` gives the bars).
    result : DetectionResult, optional
        Detection with these probes; without it only the left panel is drawn.
    path : str or Path, optional
        Save the figure there as PNG (parent folders created) and close it.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    InvalidArgumentError
        If the probes are of a classification kind (no R² to plot).
    StorageError, ReadOnlyError
        If ``path`` cannot be written.
    """
    require_ridge(probes.kind, "the layer-summary figure")
    plt = _pyplot()
    metrics = probes.metrics()
    layers = [m["layer"] for m in metrics]
    x = np.arange(len(layers))
    ncols = 2 if result is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols + 1, 4.2), squeeze=False)
    ax = axes[0, 0]
    ax.bar(x - 0.2, [m["cv_r2"] for m in metrics], 0.4, label="held-out R² (CV)")
    if probes.has_control:
        ax.bar(
            x + 0.2,
            [m["control_cv_r2"] for m in metrics],
            0.4,
            hatch="//",
            color="lightgray",
            label="shuffled-label control",
        )
    ax.plot(x - 0.2, [m["train_r2"] for m in metrics], "k_", ms=18, label="training R²")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(layers)
    ax.set_xlabel("layer")
    ax.set_ylabel("R²")
    ax.set_ylim(min(-0.2, ax.get_ylim()[0]), 1.05)
    ax.set_title(f"probe: {probes.lineage.get('target')} @ {probes.lineage.get('position')}")
    ax.legend(fontsize=8)
    if result is not None:
        ax = axes[0, 1]
        rows = {r["layer"]: r for r in result.summary()}
        det_layers = [lay for lay in layers if lay in rows]
        xd = np.arange(len(det_layers))
        for off, key, label, style in [
            (-0.27, "probe", "probe", {}),
            (0.0, "shuffled_probe", "shuffled-label probe", {"color": "lightgray", "hatch": "//"}),
            (0.27, "random_target", "random in-range target", {"color": "wheat", "hatch": ".."}),
        ]:
            vals = [rows[lay][f"{key}_mean_min_error"] for lay in det_layers]
            ax.bar(xd + off, vals, 0.27, label=label, **style)
        from actstore.analysis._verdict import VERDICTS, layer_verdict

        ticks = []
        for lay in det_layers:
            key, _ = layer_verdict(rows[lay])
            p = rows[lay].get("p_value_corrected", rows[lay].get("p_value"))
            verdict = textwrap.fill(VERDICTS[key], 16)
            ticks.append(f"{lay}\n{verdict}" + (f"\np = {p:.2g}" if p is not None else ""))
        ax.set_xticks(xd)
        ax.set_xticklabels(ticks, fontsize=8)
        ax.set_xlabel("layer (verdict: docs/reports.md)")
        ax.set_ylabel("mean minimum |error| over tokens")
        ax.set_title(f"detection of {result.lineage.get('target')} vs chance")
        ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_alpha_curves(probes: ProbeSet, *, path: str | Path | None = None) -> Any:
    """(4) Held-out R² against alpha, one line per layer (control dashed), chosen alpha marked.

    Parameters
    ----------
    probes : ProbeSet
        Ridge probes, one per layer: ``cv_r2 (layer, alpha_grid)`` against the penalties each
        layer searched.
    path : str or Path, optional
        Save the figure there as PNG (parent folders created) and close it.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    InvalidArgumentError
        If the probes are of a classification kind (no R² to plot).
    StorageError, ReadOnlyError
        If ``path`` cannot be written.
    """
    require_ridge(probes.kind, "the alpha-curve figure")
    plt = _pyplot()
    ds = probes.dataset
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, layer in enumerate(probes.layers):
        # The penalties each layer searched (a relative grid scales with the layer).
        alphas = ds["alpha_values"].values[i] if "alpha_values" in ds else ds["alpha_grid"].values
        (line,) = ax.plot(alphas, ds["cv_r2"].values[i], "o-", label=f"L{layer}")
        chosen = int(np.flatnonzero(alphas == ds["alpha"].values[i])[0])
        ax.plot(alphas[chosen], ds["cv_r2"].values[i, chosen], "*", ms=14, color=line.get_color())
        if probes.has_control:
            ax.plot(alphas, ds["control_cv_r2"].values[i], "--", color=line.get_color(), alpha=0.5)
    if len(alphas) > 1:
        ax.set_xscale("log")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("alpha")
    ax.set_ylabel("held-out R² (mean over folds)")
    ax.set_title("CV R² vs alpha (stars: chosen; dashed: shuffled-label control)")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    return _finish(fig, path)
