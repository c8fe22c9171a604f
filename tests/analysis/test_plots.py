"""Figures: drawn from a detection result, saved as PNG, matplotlib only on demand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from actstore.analysis import (
    detect,
    fit_probes,
    plot_alpha_curves,
    plot_heatmaps,
    plot_layer_summary,
    plot_traces,
)


@pytest.fixture(scope="module")
def fitted(planted_pair):
    train, test = planted_pair
    probes = fit_probes(train, prompt_set="arithmetic", target="value", alphas=[0.1, 1, 10])
    return probes, detect(test, probes, prompt_set="physics", target="v_squared", write=False)


def test_four_figures(fitted, tmp_path) -> None:
    probes, res = fitted
    fig = plot_heatmaps(res, [0, 2], path=tmp_path / "h.png")
    assert len(fig.axes) == 4  # two panels and their colour bars
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "<v>" in labels  # readable token labels
    fig = plot_traces(res, [1], path=tmp_path / "t.png")
    assert len(fig.axes[0].lines) == len(probes.layers) + 1  # one per layer + the true value
    plot_layer_summary(probes, res, path=tmp_path / "s.png")
    plot_layer_summary(probes, None, path=tmp_path / "s1.png")
    plot_alpha_curves(probes, path=tmp_path / "a.png")
    for name in ("h", "t", "s", "s1", "a"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_importing_analysis_does_not_import_matplotlib() -> None:
    code = "import sys, actstore.analysis; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
