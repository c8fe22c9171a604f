"""The HTML report is one self-contained file: figures embedded, token view data checked.

The token view's embedded data is compared with the detection result's own numbers; the browser
side (rendering, token count on screen) is tests/analysis/test_browser.py.
"""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from actstore.analysis import detect, fit_probes, write_report
from actstore.analysis._html import image_data_uri, token_view_data
from actstore.analysis._tokens import readable_tokens
from actstore.errors import InvalidArgumentError

HOSTILE = "</script><script>alert(1)</script>"


class _Refs(HTMLParser):
    """Every URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k in ("src", "href", "data") and v is not None:
                self.refs.append((tag, k, v))


@pytest.fixture(scope="module")
def report(planted_pair, tmp_path_factory):
    train, test = planted_pair
    test = test.copy(deep=True)
    test["token_str"] = test["token_str"].astype(object)
    test["token_str"].values[0, 0] = HOSTILE  # token text must never close the script element
    probes = fit_probes(train, prompt_set="arithmetic", target="value", alphas=[0.1, 1, 10])
    res = detect(test, probes, prompt_set="physics", target="v_squared", write=False)
    out = tmp_path_factory.mktemp("report")
    paths = write_report(probes, res, out, prompts=[0, 1], max_prompts=7)
    return res, paths, paths["html"].read_text(encoding="utf-8")


def _view_data(page: str) -> dict:
    m = re.search(r"<script type='application/json' id='tv-data'>(.*?)</script>", page, re.S)
    assert m is not None
    return json.loads(m.group(1))


def test_figures_are_embedded_and_nothing_is_fetched(report) -> None:
    _, paths, page = report
    parser = _Refs()
    parser.feed(page)
    imgs = [v for tag, _, v in parser.refs if tag == "img"]
    assert len(imgs) == 4
    embedded = {base64.b64decode(v.split(",", 1)[1]) for v in imgs}
    assert all(v.startswith("data:image/png;base64,") for v in imgs)
    files = {paths[k].read_bytes() for k in ("heatmaps", "traces", "summary", "alphas")}
    assert embedded == files  # the very PNGs written beside the report
    assert not [r for r in parser.refs if not r[2].startswith("data:")]
    assert "http://" not in page and "https://" not in page


def test_token_view_data_matches_the_result(report) -> None:
    res, _, page = report
    data = _view_data(page)
    assert data["n_prompts"] == res.tokens.sizes["prompt"] and len(data["prompts"]) == 7
    assert "The first 7 of 120 prompts are included" in page
    labels = readable_tokens(res.tokens["token_str"].values, width=40)
    best = res.stats["best_token"].sel(control="probe").values
    assert data["layers"] == [int(v) for v in res.predictions["layer"].values]
    for p, entry in enumerate(data["prompts"]):
        nt = int(res.tokens["n_tokens"].values[p])
        assert entry["n_tokens"] == nt == len(entry["tokens"])
        assert entry["tokens"] == list(labels[p, :nt])
        assert entry["target"] == pytest.approx(float(res.tokens["target"].values[p]))
        assert entry["best"] == [int(b) for b in best[p]]
        assert entry["span"] == [int(t) for t in np.flatnonzero(res.tokens["span_mask"].values[p])]
        want = res.predictions.values[p, :, :nt, 0]
        np.testing.assert_allclose(np.array(entry["pred"], dtype=float), want, rtol=6e-4)
    assert data["prompts"][0]["tokens"][0] == HOSTILE  # survives, escaped, in the JSON
    assert HOSTILE not in page  # ... and never appears raw in the page


def test_markdown_report_links_figures_and_states_verdicts(report) -> None:
    res, paths, page = report
    md = paths["markdown"].read_text()
    assert "(computation_heatmaps.png)" in md and "data:image" not in md
    assert "shuffled_probe_mean_min_error" in md and "verdict" in md
    for layer in res.predictions["layer"].values:
        assert f"- Layer {int(layer)}: " in md and f"<li>Layer {int(layer)}: " in page


def test_bad_arguments(report, tmp_path: Path) -> None:
    res, _, _ = report
    with pytest.raises(InvalidArgumentError, match="max_prompts"):
        token_view_data(res, max_prompts=0)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(InvalidArgumentError, match="expected an image file"):
        image_data_uri(tmp_path / "x.txt")


def test_index_pages_embed_their_images(report, tmp_path: Path) -> None:
    from actstore.experiment._index import md_to_html

    _, paths, _ = report
    page = md_to_html(
        f"# t\n\n![summary]({paths['summary'].name})\n", "t", base=paths["summary"].parent
    )
    assert f"src='{image_data_uri(paths['summary'])}'" in page
    # Without a base (or for a missing file) the link stays a link.
    assert "src='missing.png'" in md_to_html("![x](missing.png)", "t", base=tmp_path)


@pytest.mark.parametrize("kind", ["logistic", "mean_diff"])
def test_report_of_a_classification_probe(tmp_path: Path, kind: str) -> None:
    """breaker12: detection works with any kind, but `actstore report` refused classification
    probes outright (the two R² figures are ridge-only). The report now leaves those two out and
    keeps the tables (with the classification metrics), the detection figures and token view."""
    import warnings

    from actstore.cli import main
    from actstore.errors import UndefinedMetricWarning
    from tests.analysis._class_data import class_cache, class_set

    ds = class_set(n=30, n_classes=2, seed=0)
    cache = class_cache(tmp_path / "c.zarr", ds)
    probes = fit_probes(cache, prompt_set="ops", target="word", kind=kind, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        res = detect(cache, probes, prompt_set="ops", target="word", write=False, permutations=0)
    paths = write_report(probes, res, tmp_path / "rep", title="cls")
    assert sorted(k for k in paths if k not in ("markdown", "html")) == ["heatmaps", "traces"]
    page = paths["html"].read_text()
    assert "cv_accuracy" in page and "cv_roc_auc" in page and "R²" not in page.split("<h2>")[1]
    assert page.count("data:image/png;base64,") == 2
    args = ["report", str(tmp_path / "c.zarr"), "--probes", "p", "--prompt-set", "ops"]
    from actstore.analysis import save_probes

    save_probes(probes, str(tmp_path / "c.zarr"), name="p")
    rc = main([*args, "--target", "word", "--permutations", "0", "--out", str(tmp_path / "r2")])
    assert rc == 0 and (tmp_path / "r2" / "report.html").exists()


# -- plots= and formats= (reportcfg) -------------------------------------------------------------
def test_only_the_asked_figures_and_formats_are_written(planted_pair, tmp_path: Path) -> None:
    from actstore.analysis import write_figures

    train, test = planted_pair
    probes = fit_probes(train, prompt_set="arithmetic", target="value", alphas=[1.0])
    res = detect(test, probes, prompt_set="physics", target="v_squared", write=False)
    figures = write_figures(probes, res, tmp_path, prompts=[0], plots=["traces"])
    assert set(figures) == {"traces"}
    paths = write_report(probes, res, tmp_path, figures=figures, formats=["html"])
    assert set(paths) == {"html", "traces"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["computation_traces.png", "report.html"]
    with pytest.raises(InvalidArgumentError, match=r"^expected plots among heatmaps, traces, "):
        write_figures(probes, res, tmp_path, plots=["heatmap"])
    with pytest.raises(InvalidArgumentError, match=r"^expected formats among md, html, got none"):
        write_report(probes, res, tmp_path, figures=figures, formats=[])
