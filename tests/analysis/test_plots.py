"""Figures: drawn from a detection result, saved as PNG, matplotlib only on demand.

The per-token figures are checked against the result's own numbers: every token labelled with its
text, the colour of each cell is |prediction - target| on a log scale clipped at the target's
scale, the span and best tokens are where the statistics say, traces keep a sane y-range.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from actstore.analysis import (
    detect,
    fit_probes,
    plot_alpha_curves,
    plot_heatmaps,
    plot_layer_summary,
    plot_traces,
)
from actstore.analysis._tokenplots import LOG_RANGE, TRACE_RANGE, error_scale
from actstore.errors import InvalidArgumentError, UnknownNameError


@pytest.fixture(scope="module")
def fitted(planted_pair):
    train, test = planted_pair
    probes = fit_probes(train, prompt_set="arithmetic", target="value", alphas=[0.1, 1, 10])
    return probes, detect(test, probes, prompt_set="physics", target="v_squared", write=False)


def _images(fig):
    return [ax for ax in fig.axes if ax.images]


def test_four_figures(fitted, tmp_path) -> None:
    probes, res = fitted
    plot_heatmaps(res, [0, 2], path=tmp_path / "h.png")
    plot_traces(res, [1], path=tmp_path / "t.png")
    plot_layer_summary(probes, res, path=tmp_path / "s.png")
    plot_layer_summary(probes, None, path=tmp_path / "s1.png")
    plot_alpha_curves(probes, path=tmp_path / "a.png")
    for name in ("h", "t", "s", "s1", "a"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_heatmap_labels_every_token_and_wraps(fitted) -> None:
    _, res = fitted
    tok = res.tokens
    nt = int(tok["n_tokens"].values[0])
    per_row = 7
    fig = plot_heatmaps(res, [0], per_row=per_row)
    panels = _images(fig)
    assert len(panels) == -(-nt // per_row)  # ceil: long prompts wrap over rows
    labels = [t.get_text() for ax in panels for t in ax.get_xticklabels()]
    want = [str(s) for s in tok["token_str"].values[0, :nt]]
    assert labels == want  # every token, in order, with its own text (no skipped labels)


def test_heatmap_colours_absolute_error_on_the_targets_scale(fitted) -> None:
    _, res = fitted
    fig = plot_heatmaps(res, [2], per_row=1000)
    (ax,) = _images(fig)
    im = ax.images[0]
    nt = int(res.tokens["n_tokens"].values[2])
    target = float(res.tokens["target"].values[2])
    want = np.abs(res.predictions.values[2, :, :nt, 0] - target)
    np.testing.assert_allclose(np.asarray(im.get_array()), want, rtol=1e-6)
    scale = float(np.std(res.tokens["target"].values))  # the target's spread across prompts
    assert error_scale(res) == pytest.approx(scale)
    assert type(im.norm).__name__ == "LogNorm"
    assert im.norm.vmax == pytest.approx(scale) and im.norm.vmin == pytest.approx(scale * LOG_RANGE)
    # The span's token is boxed and each layer's best token circled at the statistics' position.
    span_t = int(np.flatnonzero(res.tokens["span_mask"].values[2])[0])
    boxes = [p.get_x() + 0.5 for p in ax.patches]
    assert boxes == [span_t]
    best = res.stats["best_token"].sel(control="probe").values[2]
    circles = sorted((int(line.get_ydata()[0]), int(line.get_xdata()[0])) for line in ax.lines)
    assert circles == [(li, int(b)) for li, b in enumerate(best)]
    # Where the signal is planted, the best token is the span's and the closest cell is there.
    li = list(res.predictions["layer"].values).index(15)
    assert best[li] == span_t and np.nanargmin(want[li]) == span_t


def test_offset_target_error_of_one_spread_is_not_shown_as_close(fitted) -> None:
    # Years: a target around 1950 with a spread of a few dozen. An error as large as the spread
    # must be drawn "far" (the clipped end), not near-bright as on a scale of max |target|.
    _, res = fitted
    tokens = res.tokens.copy(deep=True)
    rng = np.random.default_rng(0)
    years = 1900.0 + rng.uniform(0, 100, size=tokens.sizes["prompt"])
    tokens["target"].values[:] = years
    spread = float(np.std(years))
    pred = res.predictions.copy(deep=True)
    p = 2
    nt = int(tokens["n_tokens"].values[p])
    pred.values[p, :, :nt, 0] = years[p] + spread  # every token off by one spread
    pred.values[p, 0, 0, 0] = years[p] + 1e-3 * spread  # one nearly exact
    off = type(res)(
        predictions=pred, stats=res.stats, span=res.span, lineage=res.lineage, tokens=tokens
    )
    assert error_scale(off) == pytest.approx(spread, rel=1e-9)
    (ax,) = _images(plot_heatmaps(off, [p], per_row=1000))
    im = ax.images[0]
    shade = np.asarray(im.norm(np.asarray(im.get_array())))  # 0 brightest .. 1 far
    assert shade[0, 0] == pytest.approx(0.0, abs=1e-3)
    # float32 predictions: the off-by-one-spread cells are at the far end to rounding
    assert np.all(shade[:, 1:] >= 1.0 - 1e-5) and np.all(shade[1:, 0] >= 1.0 - 1e-5)
    # Under the old scale (max |target| ~ 2000) the same error would sit halfway to bright.
    old = np.log10(spread / (2000 * LOG_RANGE)) / np.log10(1 / LOG_RANGE)
    assert old < 0.8


def test_traces_keep_a_sane_range(fitted) -> None:
    _, res = fitted
    p = 3
    bad = res.predictions.copy()
    bad.values[p, 0, 2, 0] = 1e6  # one layer's wild swing must not flatten the rest
    wild = type(res)(
        predictions=bad, stats=res.stats, span=res.span, lineage=res.lineage, tokens=res.tokens
    )
    fig = plot_traces(wild, [p], per_row=1000)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    target = float(res.tokens["target"].values[p])
    scale = error_scale(res)
    assert hi <= target + TRACE_RANGE * scale + 1e-9 and lo >= target - TRACE_RANGE * scale - 1e-9
    nt = int(res.tokens["n_tokens"].values[p])
    others = res.predictions.values[p, 1:, :nt, 0]
    # The bulk of the other layers' predictions is visible, the wild point is on the edge.
    assert lo <= np.nanpercentile(others, 5) and hi >= np.nanpercentile(others, 95)
    assert lo <= target <= hi
    assert "beyond the range drawn as triangles" in ax.get_title(loc="left")
    edge = [ln for ln in ax.lines if ln.get_marker() == "^" and len(ln.get_xdata())]
    assert any(2 in ln.get_xdata() and hi in ln.get_ydata() for ln in edge)
    layers = res.predictions.sizes["layer"]
    assert len([ln for ln in ax.lines if ln.get_label().startswith("L")]) == layers


def test_bad_arguments(fitted) -> None:
    _, res = fitted
    with pytest.raises(InvalidArgumentError, match="per_row"):
        plot_heatmaps(res, [0], per_row=0)
    with pytest.raises(UnknownNameError, match="expected prompt labels"):
        plot_traces(res, [10_000])


def test_importing_analysis_does_not_import_matplotlib() -> None:
    code = "import sys, actstore.analysis; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
