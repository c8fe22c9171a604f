"""The four figures of an experiment (matplotlib, imported inside each function, Agg for files).

Each function returns the ``matplotlib.figure.Figure`` (shown inline in a notebook) and, given
``path``, also saves it as PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actstore.errors import UnknownNameError

if TYPE_CHECKING:
    from actstore.analysis._detect import DetectionResult
    from actstore.analysis._probes import ProbeSet

__all__ = ["plot_alpha_curves", "plot_heatmaps", "plot_layer_summary", "plot_traces"]


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


def _finish(fig: Any, path: str | Path | None) -> Any:
    fig.tight_layout()
    if path is not None:
        from actstore._locations import location_errors

        with location_errors(str(path), "write"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110, bbox_inches="tight")
        if not _interactive():
            _pyplot().close(fig)
    return fig


def _label(tok: str, width: int = 10) -> str:
    """Token strings made readable as tick labels (visible spaces/newlines, truncated)."""
    tok = tok.replace("\n", "\\n").replace("\t", "\\t")
    tok = tok if tok.strip() else tok.replace(" ", "␣")
    return tok if len(tok) <= width else tok[: width - 1] + "…"


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
                f"expected prompts among {labels[0]}..{labels[-1]} (or -1 for the last), got "
                f"{int(p)}; pick prompts of the prompt set"
            )
    return rows


def _token_ticks(ax: Any, tokens: np.ndarray, n: int, max_labels: int = 60) -> None:
    step = max(1, int(np.ceil(n / max_labels)))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([_label(str(tokens[i])) for i in ticks], rotation=70, fontsize=7)


def plot_heatmaps(
    result: DetectionResult,
    prompts: Sequence[int] | None = None,
    *,
    n: int = 4,
    path: str | Path | None = None,
) -> Any:
    """(1) Per prompt: predictions as a layer x token heatmap, coloured by signed error.

    Colour is ``prediction - target`` (diverging, 0 = exact match); the tokens of the compared span
    are boxed and the best-matching token of each layer is dotted. ``prompts`` are prompt labels
    (default: the first ``n``).
    """
    plt = _pyplot()
    rows = _prompt_positions(result, prompts, n)
    layers = [int(v) for v in result.predictions["layer"].values]
    fig, axes = plt.subplots(len(rows), 1, figsize=(14, 1.2 + 0.45 * len(layers) * len(rows) + 1))
    axes = np.atleast_1d(axes)
    tok = result.tokens
    for ax, p in zip(axes, rows):
        nt = int(tok["n_tokens"].values[p])
        target = float(tok["target"].values[p])
        err = result.predictions.values[p, :, :nt, 0] - target
        finite = np.abs(err[np.isfinite(err)])  # none for a prompt without a label
        lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        im = ax.imshow(err, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="none")
        ax.set_yticks(range(len(layers)))
        ax.set_yticklabels(layers)
        ax.set_ylabel("layer")
        _token_ticks(ax, tok["token_str"].values[p], nt)
        if "span_mask" in tok:
            for t in np.flatnonzero(tok["span_mask"].values[p, :nt]):
                ax.add_patch(
                    plt.Rectangle((t - 0.5, -0.5), 1, len(layers), fill=False, lw=2, ec="black")
                )
        best = result.stats["best_token"].sel(control="probe").values[p]
        ax.plot(best, range(len(layers)), "k.", ms=5)
        span = f", span {result.span!r} boxed" if result.span else ""
        ax.set_title(
            f"prompt {tok['prompt'].values[p]}: target {target:g}{span}; dots: best token",
            fontsize=9,
        )
        fig.colorbar(im, ax=ax, label="prediction − target", pad=0.01)
    return _finish(fig, path)


def plot_traces(
    result: DetectionResult,
    prompts: Sequence[int] | None = None,
    *,
    n: int = 3,
    path: str | Path | None = None,
) -> Any:
    """(2) Per prompt: predictions over tokens, one line per layer, the true value dashed."""
    plt = _pyplot()
    rows = _prompt_positions(result, prompts, n)
    layers = [int(v) for v in result.predictions["layer"].values]
    fig, axes = plt.subplots(len(rows), 1, figsize=(14, 3.6 * len(rows)), squeeze=False)
    tok = result.tokens
    for ax, p in zip(axes[:, 0], rows):
        nt = int(tok["n_tokens"].values[p])
        target = float(tok["target"].values[p])
        for i, layer in enumerate(layers):
            ax.plot(result.predictions.values[p, i, :nt, 0], "o-", ms=3, lw=1.2, label=f"L{layer}")
        ax.axhline(target, color="red", ls="--", lw=2, label=f"true {target:g}")
        if "span_mask" in tok:
            for t in np.flatnonzero(tok["span_mask"].values[p, :nt]):
                ax.axvspan(t - 0.5, t + 0.5, color="gold", alpha=0.3)
        _token_ticks(ax, tok["token_str"].values[p], nt)
        ax.set_ylabel("prediction")
        ax.set_title(f"prompt {tok['prompt'].values[p]}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=min(8, len(layers) + 1), loc="upper right")
    return _finish(fig, path)


def plot_layer_summary(
    probes: ProbeSet, result: DetectionResult | None = None, *, path: str | Path | None = None
) -> Any:
    """(3) Per layer: probe CV R² (and the shuffled control), detection error beside its controls.

    Left: held-out R² at the chosen alpha, training R² as a tick, shuffled-label control hatched.
    Right: mean minimum error over prompts (the reference's number) with bars for the
    shuffled-label probe and the random in-range target: the chance band it must beat.
    """
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
        ax.set_xticks(xd)
        ax.set_xticklabels(det_layers)
        ax.set_xlabel("layer")
        ax.set_ylabel("mean minimum |error| over tokens")
        ax.set_title(f"detection of {result.lineage.get('target')} vs chance")
        ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_alpha_curves(probes: ProbeSet, *, path: str | Path | None = None) -> Any:
    """(4) Held-out R² against alpha, one line per layer (control dashed), chosen alpha marked."""
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
