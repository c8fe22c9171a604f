"""Detection on caches that hold some of the probes' layers, and on read-only caches (issue 10,
item 7).

The reference for a subset copy is detection on the whole cache restricted to the same layers and
to the subset's source prompts (``source_prompt``); predictions are also checked against numpy
(activations @ coef + intercept) under the layer they belong to.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import actstore
from actstore.analysis import detect, fit_probes, load_probes, save_probes
from actstore.errors import ProbeMismatchError, ReadOnlyError, UnknownNameError
from actstore.store import copy_cache, open_cache
from tests._fixtures.analysis import planted_set

SUBSET = [-1, 3, 50, 7, 0, 99, 64, 12, 31, 118]  # out of order, negative, across blocks


@pytest.fixture(scope="module")
def caches(planted_cache, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("layers")
    full = root / "full.zarr"
    shutil.copytree(planted_cache, full)
    probes = fit_probes(full, prompt_set="arithmetic", target="value", alphas=[0.01, 0.1, 1.0])
    save_probes(probes, full, name="vl")
    copy_cache(full, root / "sub.zarr", layers=[3, 15], prompts=SUBSET)
    copy_cache(full, root / "sub.zip", layers=[3, 15], prompts=SUBSET)
    return {"full": full, "sub": root / "sub.zarr", "zip": root / "sub.zip", "root": root}


def _numpy_pred(cache: Path, probes, layers: list[int]) -> np.ndarray:
    ds = actstore.open(cache, group="physics")
    acts = ds["resid_post"].sel(layer=layers).values.astype(np.float64)
    sub = probes.select_layers(layers)
    coef, icept = sub.weights()
    pred = np.einsum("pltd,ld->plt", acts, coef) + icept[None, :, None]
    pad = np.arange(acts.shape[2])[None, :] >= ds["n_tokens"].values[:, None]
    return np.where(pad[:, None, :], np.nan, pred)


def test_subset_detection_equals_full_detection_on_the_same_layers(caches) -> None:
    probes = load_probes(caches["full"], name="vl")
    with pytest.warns(UserWarning, match=r"using \[3, 15\], leaving out \[9, 21\] \(not stored\)"):
        sub = detect(caches["sub"], probes, prompt_set="physics", target="v_squared")
    full = detect(caches["full"], probes, prompt_set="physics", target="v_squared", layers=[3, 15])
    src = actstore.open(caches["sub"], group="physics")["source_prompt"].values
    assert src.tolist() == [119, 3, 50, 7, 0, 99, 64, 12, 31, 118]
    assert sub.stats["layer"].values.tolist() == [3, 15]
    ref = full.stats.isel(prompt=src)
    for control in ("probe", "shuffled_probe"):  # random_target draws per prompt set
        for var in ("best_token", "best_error", "best_pred", "z", "hit", "span_rank"):
            np.testing.assert_allclose(
                sub.stats[var].sel(control=control).values,
                ref[var].sel(control=control).values,
                rtol=1e-6,
                err_msg=f"{control} {var}",
            )
    np.testing.assert_array_equal(
        sub.predictions.values, full.predictions.values[src], err_msg="predictions"
    )
    # written back under the right layers, equal to numpy and to the full cache's
    stored = actstore.open(caches["sub"], group="physics")
    assert stored["layer"].values.tolist() == [3, 15]
    np.testing.assert_allclose(
        stored["pred_vl"].values, _numpy_pred(caches["sub"], probes, [3, 15]), rtol=1e-4, atol=1e-3
    )
    full_pred = actstore.open(caches["full"], group="physics")["pred_vl"].values
    assert np.isnan(full_pred[:, [1, 3]]).all()  # layers 9, 21 were not applied (layers=)
    np.testing.assert_array_equal(stored["pred_vl"].values, full_pred[src][:, [0, 2]])


def test_layers_option_and_refusals(caches) -> None:
    probes = load_probes(caches["full"], name="vl")
    res = detect(caches["sub"], probes, prompt_set="physics", target="v_squared", layers=[15])
    assert res.stats["layer"].values.tolist() == [15]
    assert res.lineage["layers"] == [15]
    with pytest.raises(UnknownNameError, match=r"got \[9\]; pick among \[3, 15\]"):
        detect(caches["sub"], probes, prompt_set="physics", target="v_squared", layers=[9])
    with pytest.raises(UnknownNameError, match=r"got \[15, 15\]"):
        detect(caches["sub"], probes, prompt_set="physics", target="v_squared", layers=[15, 15])
    other = planted_set(n_prompts=10, kind="test", seed=4, layers=(4, 16), signal_layer=16)
    with pytest.raises(ProbeMismatchError, match=r"got layers \[4, 16\]; extract those"):
        detect(other, probes, prompt_set="physics", target="v_squared", write=False)


def _cli(*args: str, user: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "actstore", *args]
    env = None
    if user:  # as the unprivileged user `nobody`: the permission bits apply (CI runs as root)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        env = {**os.environ, "HOME": "/tmp"}
    return subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)


def test_cli_detect_plot_report_on_a_subset(caches, tmp_path) -> None:
    base = ("--probes", "vl", "--prompt-set", "physics", "--target", "v_squared")
    proc = _cli("detect", str(caches["sub"]), *base, "--layers", "15", "--no-write")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    end = next(i for i, ln in enumerate(lines) if ln.startswith("best layer"))
    rows = [ln.split()[0] for ln in lines[2:end]]
    assert rows == ["15"]
    proc = _cli("detect", str(caches["sub"]), *base, "--no-write", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "leaving out [9, 21]" in proc.stderr
    out = tmp_path / "plots"
    proc = _cli("plot", str(caches["sub"]), *base, "--out", str(out), "--prompts", "-1,0")
    assert proc.returncode == 0, proc.stderr
    assert len(list(out.glob("*.png"))) == 4
    proc = _cli("report", str(caches["zip"]), *base, "--out", str(tmp_path / "r"), "--layers", "15")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r" / "report.md").exists()
    proc = _cli("plot", str(caches["sub"]), *base, "--out", str(out), "--prompts", "10")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == (
        "actstore: warning: prompt set 'physics' stores 2 of the probes' 4 layers: using [3, 15], "
        "leaving out [9, 21] (not stored); pass layers= (--layers) to choose"
    )
    proc = _cli(
        "plot", str(caches["sub"]), *base, "--out", str(out), "--prompts", "10", "--layers", "3"
    )
    assert proc.returncode == 2
    # Layer 3 may hold no signal: warnings may come before the error.
    *warned, last = proc.stderr.splitlines()
    assert all(line.startswith("actstore: warning: ") for line in warned)
    assert last == (
        "actstore: error: expected prompt labels of the detection result (0..9, 10 prompts, or "
        "-1 for the last), got 10; pass labels from result.tokens['prompt']"
    )


_HINT = "pass --no-write (write=False) to detect without storing the predictions"


def test_read_only_zip_points_to_no_write(caches) -> None:
    probes = load_probes(caches["full"], name="vl")
    for url in (str(caches["zip"]), f"zip::file://{caches['zip']}"):
        with pytest.raises(
            ReadOnlyError, match=re.escape(f"got {url!r}, which is read-only; {_HINT}")
        ):
            detect(url, probes, prompt_set="physics", target="v_squared", layers=[15])
        res = detect(
            url, probes, prompt_set="physics", target="v_squared", layers=[15], write=False
        )
        assert res.stats.sizes["prompt"] == len(SUBSET)
    proc = _cli(
        "detect", str(caches["zip"]), "--probes", "vl", "--prompt-set", "physics", "--target",
        "v_squared",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"actstore: error: expected a writable cache to store the predictions in, got "
        f"'{caches['zip']}', which is read-only; {_HINT}\n"
    )
    c = open_cache(caches["sub"], mode="r")
    with pytest.raises(ReadOnlyError, match=re.escape(f"opened read-only; {_HINT}, or open it")):
        detect(c, probes, prompt_set="physics", target="v_squared")


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root to run the command as another user (setpriv)",
)
def test_cache_this_user_cannot_write_points_to_no_write(caches) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="actstore-ro-", dir="/tmp"))
    try:
        os.chmod(tmp, 0o755)
        dst = tmp / "c.zarr"
        shutil.copytree(caches["sub"], dst)
        for dirpath, _dirs, files in os.walk(dst):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(Path(dirpath) / f, 0o644)
        before = sorted(str(p.relative_to(dst)) for p in dst.rglob("*"))
        base = ("--probes", "vl", "--prompt-set", "physics", "--target", "v_squared")
        proc = _cli("detect", str(dst), *base, user=True)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines()[-1] == (
            f"actstore: error: expected a writable cache to store the predictions in, got "
            f"'{dst}', whose prompt set 'physics' this user cannot write; {_HINT}"
        )
        assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*")) == before
        proc = _cli("detect", str(dst), *base, "--no-write", user=True)
        assert proc.returncode == 0, proc.stderr
    finally:
        shutil.rmtree(tmp)
