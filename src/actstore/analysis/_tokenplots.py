"""Per-token figures of a detection result: error heatmaps and prediction traces.

Every real token is labelled with its decoded text (:func:`readable_tokens`: ``·`` is a space,
``↵`` a newline), long prompts wrap over several rows of ``per_row`` tokens, the compared span is
marked and the best-matching token of each layer is circled.

Scales. The heatmap colours ``|prediction - target|`` on a log scale from ``scale / 1000`` to
``scale``, where ``scale`` is the target's own spread: its standard deviation across the set's
prompts (:func:`error_scale`). An error as large as the spread is "far" (clipped: no better than
guessing the mean), and a match to 0.1 % of it is the brightest colour. The spread, not the
largest ``|target|``: for a target with a large offset (years 1900-2000) the largest value would
make an error of a whole century look close. Traces show ``target ± 3 * scale`` at most (narrower
when the predictions stay closer); points outside are drawn as triangles on the edge and counted
in the panel's title.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actstore.analysis._plots import _finish, _prompt_positions, _pyplot
from actstore.analysis._ridge import CONSTANT_RTOL
from actstore.analysis._tokens import readable_tokens
from actstore.errors import InvalidArgumentError

if TYPE_CHECKING:
    from actstore.analysis._detect_result import DetectionResult

__all__ = ["error_scale", "plot_heatmaps", "plot_traces", "token_labels"]

#: Colour range of the heatmaps: |error| from ``scale * LOG_RANGE`` (brightest) to ``scale``.
LOG_RANGE = 1e-3
#: Trace y-range: at most this many ``scale`` either side of the target.
TRACE_RANGE = 3.0


def token_labels(result: DetectionResult, p: int, *, width: int = 12) -> list[str]:
    """Readable labels of prompt position ``p``'s real tokens (``∅`` for an empty token)."""
    tok = result.tokens
    nt = int(tok["n_tokens"].values[p])
    every = readable_tokens(tok["token_str"].values, width=width)  # decided over the whole set
    return [str(s) or "∅" for s in every[p, :nt]]


def error_scale(result: DetectionResult) -> float:
    """The target's own scale: the standard deviation (``ddof=0``) of its finite values across
    the set's prompts; the largest ``|target|`` where they do not vary (one prompt), 1.0 if that
    is zero or there is none."""
    y = np.asarray(result.tokens["target"].values, dtype=np.float64)
    y = y[np.isfinite(y)]
    if y.size == 0:
        return 1.0
    spread = float(np.std(y))
    if spread > CONSTANT_RTOL * float(np.abs(y).max()):
        return spread
    top = float(np.abs(y).max())
    return top if top > 0 else 1.0


def _chunks(nt: int, per_row: int) -> list[range]:
    """``ceil(nt / per_row)`` rows of (nearly) equal length, none longer than ``per_row``."""
    n_rows = max(1, -(-nt // per_row))
    bounds = np.linspace(0, nt, n_rows + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in pairwise(bounds)]


def _check_per_row(per_row: int) -> None:
    if not isinstance(per_row, int | np.integer) or per_row < 1:
        raise InvalidArgumentError(
            f"expected per_row to be a positive integer, got {per_row!r}; pass e.g. per_row=40"
        )


def _span(result: DetectionResult, p: int, nt: int) -> np.ndarray:
    tok = result.tokens
    if "span_mask" not in tok:
        return np.zeros(nt, dtype=bool)
    return np.asarray(tok["span_mask"].values[p, :nt], dtype=bool)


def _layers(result: DetectionResult) -> list[int]:
    return [int(v) for v in result.predictions["layer"].values]


def _best(result: DetectionResult, p: int) -> np.ndarray:
    return np.asarray(result.stats["best_token"].sel(control="probe").values[p], dtype=np.int64)


def plot_heatmaps(
    result: DetectionResult,
    prompts: Sequence[int] | None = None,
    *,
    n: int = 3,
    per_row: int = 50,
    path: str | Path | None = None,
) -> Any:
    """(1) Per prompt: ``|prediction - target|`` per layer (rows) and token (columns).

    Colour is the absolute error on a log scale clipped at the target's spread across prompts
    (the module's note): bright = close to the target, dark = off by the spread or more. Every
    token is labelled with its decoded text, prompts longer than ``per_row`` tokens wrap over
    several rows, the span's tokens are boxed in red and each layer's best-matching token is
    circled with its prediction written beside it.

    Parameters
    ----------
    result : DetectionResult
        From :func:`actstore.analysis.detect`.
    prompts : sequence of int, optional
        Prompt labels to draw (default: the first ``n``).
    per_row : int
        Tokens per row before wrapping.
    path : str or Path, optional
        Also save the figure as PNG there.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidArgumentError
        If ``per_row`` is not a positive integer.
    UnknownNameError
        If a prompt label is not in the result.
    """
    _check_per_row(per_row)
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    rows = _prompt_positions(result, prompts, n)
    layers = _layers(result)
    tok = result.tokens
    scale = error_scale(result)
    norm = LogNorm(vmin=scale * LOG_RANGE, vmax=scale, clip=True)
    cmap = plt.get_cmap("viridis_r").with_extremes(bad="white")
    panels = [(p, ch) for p in rows for ch in _chunks(int(tok["n_tokens"].values[p]), per_row)]
    axes_h, gap_h = 0.25 * len(layers) + 0.2, 1.15  # inches: cells; tick labels and title
    fig = plt.figure(figsize=(15, 0.3 + (axes_h + gap_h) * len(panels)))
    grid = fig.add_gridspec(
        len(panels), 2, width_ratios=[60, 1], hspace=gap_h / axes_h, wspace=0.02
    )
    width = max(len(ch) for _, ch in panels)
    im = None
    for k, (p, chunk) in enumerate(panels):
        ax = fig.add_subplot(grid[k, 0])
        nt = int(tok["n_tokens"].values[p])
        target = float(tok["target"].values[p])
        pred = result.predictions.values[p, :, :nt, 0]
        err = np.abs(pred - target)
        cols = np.asarray(chunk)
        im = ax.imshow(
            np.ma.masked_invalid(err[:, cols]),
            aspect="auto",
            cmap=cmap,
            norm=norm,
            interpolation="none",
            extent=(cols[0] - 0.5, cols[-1] + 0.5, len(layers) - 0.5, -0.5),
        )
        ax.set_xlim(cols[0] - 0.5, cols[0] + width - 0.5)
        ax.set_yticks(range(len(layers)), [str(v) for v in layers], fontsize=7)
        ax.set_ylabel("layer", fontsize=8)
        labels = token_labels(result, p)
        ax.set_xticks(cols, [labels[t] for t in cols], rotation=90, fontsize=7)
        ax.tick_params(axis="x", length=2, pad=1)
        for t in np.flatnonzero(_span(result, p, nt)):
            if t in chunk:
                ax.add_patch(
                    plt.Rectangle((t - 0.5, -0.5), 1, len(layers), fill=False, lw=2, ec="red")
                )
        for li, b in enumerate(_best(result, p)):
            if b in chunk and np.isfinite(pred[li, b]):
                ax.plot(b, li, "o", ms=7, mfc="none", mec="black", mew=1.3)
                ax.annotate(
                    f"{pred[li, b]:.3g}",
                    (b, li),
                    xytext=(6, 0),
                    textcoords="offset points",
                    fontsize=6,
                    va="center",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
                )
        if chunk.start == 0:
            span = f"; span {result.span!r} boxed red" if result.span is not None else ""
            ax.set_title(
                f"prompt {tok['prompt'].values[p]}: target {target:g}{span}; "
                "circled: each layer's best token (its prediction beside it)",
                fontsize=9,
                loc="left",
            )
        else:
            ax.set_title(f"prompt {tok['prompt'].values[p]} (continued)", fontsize=8, loc="left")
    if im is not None:
        cax = fig.add_subplot(grid[:, 1])
        fig.colorbar(im, cax=cax, extend="both")
        cax.set_ylabel(
            f"|prediction − target|\n(log; clipped at the target's std = {scale:.3g})", fontsize=8
        )
    return _finish(fig, path, tight=False)


def _trace_limits(pred: np.ndarray, target: float, scale: float) -> tuple[float, float]:
    """Y-range: the predictions and the target, never beyond ``target ± TRACE_RANGE * scale``."""
    finite = pred[np.isfinite(pred)]
    lo_cap, hi_cap = target - TRACE_RANGE * scale, target + TRACE_RANGE * scale
    if finite.size == 0:
        return lo_cap, hi_cap
    # The bulk of the predictions (2nd-98th percentile), so one layer's swings stay on the edge.
    lo = min(float(np.percentile(finite, 2)), target)
    hi = max(float(np.percentile(finite, 98)), target)
    pad = 0.05 * max(hi - lo, 1e-6 * max(abs(target), 1.0))
    return max(lo - pad, lo_cap), min(hi + pad, hi_cap)


def plot_traces(
    result: DetectionResult,
    prompts: Sequence[int] | None = None,
    *,
    n: int = 3,
    per_row: int = 80,
    path: str | Path | None = None,
) -> Any:
    """(2) Per prompt: predictions over tokens, one line per layer, the target as a red line.

    The y-range is the bulk of the predictions (2nd-98th percentile), capped at
    ``target ± 3 × scale`` (the module's note), so that one layer's swings cannot flatten the
    rest; points outside are drawn as triangles on
    the edge and counted in the title. Tokens are labelled with their decoded text, the span is
    shaded and prompts longer than ``per_row`` tokens wrap over several rows.

    Parameters
    ----------
    result : DetectionResult
        From :func:`actstore.analysis.detect`.
    prompts : sequence of int, optional
        Prompt labels to draw (default: the first ``n``).
    per_row : int
        Tokens per row before wrapping.
    path : str or Path, optional
        Also save the figure as PNG there.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidArgumentError
        If ``per_row`` is not a positive integer.
    UnknownNameError
        If a prompt label is not in the result.
    """
    _check_per_row(per_row)
    plt = _pyplot()
    rows = _prompt_positions(result, prompts, n)
    layers = _layers(result)
    tok = result.tokens
    scale = error_scale(result)
    panels = [(p, ch) for p in rows for ch in _chunks(int(tok["n_tokens"].values[p]), per_row)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(15, 3.0 * len(panels)), squeeze=False)
    width = max(len(ch) for _, ch in panels)
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(layers), 1)))
    for ax, (p, chunk) in zip(axes[:, 0], panels):
        nt = int(tok["n_tokens"].values[p])
        target = float(tok["target"].values[p])
        pred = result.predictions.values[p, :, :nt, 0]
        lo, hi = _trace_limits(pred, target, scale)
        cols = np.asarray(chunk)
        outside = 0
        for li, layer in enumerate(layers):
            y = pred[li, cols]
            ax.plot(
                cols, np.clip(y, lo, hi), "o-", ms=3, lw=1.2, color=colors[li], label=f"L{layer}"
            )
            above, below = y > hi, y < lo
            outside += int(above.sum() + below.sum())
            ax.plot(cols[above], np.full(above.sum(), hi), "^", ms=7, color=colors[li])
            ax.plot(cols[below], np.full(below.sum(), lo), "v", ms=7, color=colors[li])
        ax.axhline(target, color="red", ls="--", lw=2, label=f"target {target:g}")
        for t in np.flatnonzero(_span(result, p, nt)):
            if t in chunk:
                ax.axvspan(t - 0.5, t + 0.5, color="gold", alpha=0.35)
        labels = token_labels(result, p)
        ax.set_xticks(cols, [labels[t] for t in cols], rotation=90, fontsize=7)
        ax.set_xlim(cols[0] - 0.5, cols[0] + width - 0.5)
        ax.set_ylim(lo, hi)
        ax.set_ylabel("prediction")
        ax.grid(alpha=0.3)
        cont = "" if chunk.start == 0 else " (continued)"
        note = (
            f"; {outside} point{'s' if outside > 1 else ''} beyond the range drawn as triangles"
            if outside
            else ""
        )
        span = f", span {result.span!r} shaded" if result.span is not None and not cont else ""
        ax.set_title(f"prompt {tok['prompt'].values[p]}{cont}{span}{note}", fontsize=9, loc="left")
        ax.legend(fontsize=7, ncol=min(8, len(layers) + 1), loc="upper right")
    return _finish(fig, path)
