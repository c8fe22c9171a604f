"""The HTML report in a real headless browser (Debian's chromium): it renders, the screenshot is
not blank, and the token view shows exactly the prompt's tokens, as many as the cache says.

Slow (a browser start per call). `.ci/run` installs chromium; outside CI the test skips with the
reason when no chromium is found.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from actstore.analysis import detect, fit_probes, write_report

pytestmark = pytest.mark.slow


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("chromium not found although CI=true; .ci/run installs it (apt-get)")
    pytest.skip("no chromium found: install it (apt-get install -y chromium) to run this test")


def _browse(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile{len(list(tmp.iterdir()))}"
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *extra,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


@pytest.fixture(scope="module")
def page(planted_cache, tmp_path_factory):
    probes = fit_probes(planted_cache, prompt_set="arithmetic", target="value", alphas=[1.0])
    res = detect(planted_cache, probes, prompt_set="physics", target="v_squared", write=False)
    out = tmp_path_factory.mktemp("browser")
    paths = write_report(probes, res, out, prompts=[0], max_prompts=5)
    return paths["html"], tmp_path_factory.mktemp("chromium")


@pytest.mark.parametrize(("prompt", "layer"), [(None, None), (3, 15)])
def test_token_view_shows_the_prompts_tokens(page, planted_cache, prompt, layer) -> None:
    html_path, tmp = page
    url = html_path.resolve().as_uri()
    if prompt is not None:
        url += f"#prompt={prompt}&layer={layer}"
    dom = _browse(url, tmp, "--dump-dom").stdout
    box = re.search(r'<div id="tv-tokens"([^>]*)>(.*?)</div>', dom, re.S)
    assert box is not None, "the token view did not render"
    attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', box.group(1)))
    spans = re.findall(r'<span class="tok[^"]*"', box.group(2))
    # The cache's own count, read independently of the analysis code.
    n_tokens = xr.open_zarr(planted_cache, group="physics", consolidated=False)["n_tokens"].values
    want_prompt = 0 if prompt is None else prompt
    assert attrs["prompt"] == str(want_prompt)
    assert attrs["layer"] == str(3 if layer is None else layer)
    assert len(spans) == int(attrs["n-tokens"]) == int(n_tokens[want_prompt])
    status = re.search(r'<div id="tv-status">([^<]*)</div>', dom)
    assert status is not None and f" {int(n_tokens[want_prompt])} tokens " in status.group(1)
    assert 'title="token 0 ' in box.group(2)  # the values on hover
    if layer == 15:
        # At the signal layer the planted token (the span) is the closest one and the view
        # paints it the scale's brightest colour; every other token is darker.
        tags = re.findall(r"<span ([^>]*)>", box.group(2))
        rgb = [tuple(map(int, re.search(r"rgb\((\d+), (\d+), (\d+)\)", t).groups())) for t in tags]
        bright = np.array([sum(c) for c in rgb])
        span_t = [i for i, t in enumerate(tags) if 'class="tok span' in t]
        assert len(span_t) == 1 and int(np.argmax(bright)) == span_t[0]
        assert np.abs(np.array(rgb[span_t[0]]) - [0xFD, 0xE7, 0x25]).sum() < 40


def test_screenshot_is_not_blank(page) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    html_path, tmp = page
    shot = tmp / "shot.png"
    url = html_path.resolve().as_uri() + "#prompt=1&layer=15"
    _browse(url, tmp, f"--screenshot={shot}", "--window-size=1200,3000")
    img = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert img.shape[:2] == (3000, 1200)
    assert img.std() > 20  # not a blank page
    # The token view shows the signal layer: the planted token is close to its target, so the
    # colour scale's brightest yellow (#fde725) is on screen.
    yellow = np.abs(img - np.array([0xFD, 0xE7, 0x25])).sum(axis=-1) < 40
    assert yellow.sum() > 50
