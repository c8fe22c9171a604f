"""The analysis command line: probe fit|show, detect, plot, report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import actstore
from actstore.cli import main


@pytest.fixture
def cache(planted_cache, tmp_path):
    dst = tmp_path / "c.zarr"
    shutil.copytree(planted_cache, dst)
    return str(dst)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_fit_show_detect_json(cache, capsys) -> None:
    rc, out, _ = _run(
        capsys,
        "probe",
        "fit",
        cache,
        "--prompt-set",
        "arithmetic",
        "--target",
        "value",
        "--alphas",
        "0.1,1,10",
        "--name",
        "v",
        "--json",
    )
    assert rc == 0
    fitted = json.loads(out)
    assert fitted["saved"].endswith("#probes/v")
    layer15 = next(r for r in fitted["layers"] if r["layer"] == 15)
    assert layer15["cv_r2"] > 0.99 and layer15["control_cv_r2"] < 0.1
    rc, out, _ = _run(capsys, "probe", "show", cache, "--json")
    assert json.loads(out) == {"probes": ["v"]}
    rc, out, _ = _run(capsys, "probe", "show", cache, "--name", "v", "--json")
    assert json.loads(out)["layers"] == fitted["layers"]
    rc, out, _ = _run(
        capsys,
        "detect",
        cache,
        "--probes",
        "v",
        "--prompt-set",
        "physics",
        "--target",
        "v_squared",
        "--json",
        "--per-prompt",
    )
    assert rc == 0
    det = json.loads(out)
    row = next(r for r in det["layers"] if r["layer"] == 15)
    assert row["probe_hit_rate"] >= 0.95 and row["random_target_hit_rate"] <= 0.1
    assert len(det["prompts"]["probe"]) == 120 * 4
    pred = actstore.open(cache, "physics")["pred_v"].values
    assert np.isfinite(pred[:, 2, 0]).all()


def test_text_output_npz_and_figures(cache, tmp_path, capsys) -> None:
    npz = str(tmp_path / "p.npz")
    rc, out, _ = _run(
        capsys,
        "probe",
        "fit",
        cache,
        "--prompt-set",
        "arithmetic",
        "--target",
        "value",
        "--layers",
        "9,15",
        "--out",
        npz,
    )
    assert rc == 0 and "cv_r2" in out and npz in out
    before = set(map(str, actstore.open(cache, "physics").data_vars))
    rc, out, _ = _run(
        capsys,
        "detect",
        cache,
        "--probes",
        npz,
        "--prompt-set",
        "physics",
        "--target",
        "v_squared",
        "--no-write",
    )
    assert rc == 0 and "best layer: 15" in out
    # (the session's planted cache may hold other tests' predictions: compare with before)
    assert set(map(str, actstore.open(cache, "physics").data_vars)) == before
    assert "pred_p" not in before
    rc, out, _ = _run(
        capsys,
        "report",
        cache,
        "--probes",
        npz,
        "--prompt-set",
        "physics",
        "--target",
        "v_squared",
        "--out",
        str(tmp_path / "rep"),
        "--prompts",
        "0,3",
    )
    assert rc == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Detection" in md and "computation_heatmaps.png" in md
    html = (tmp_path / "rep" / "report.html").read_text()
    # Self-contained: the figures are embedded, not linked.
    assert "<table>" in html and html.count("src='data:image/png;base64,") == 4
    assert "layer_summary.png" not in html
    for png in ("computation_heatmaps", "computation_traces", "layer_summary", "cv_r2_vs_alpha"):
        assert (tmp_path / "rep" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_errors_are_one_line_without_traceback(cache) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "actstore",
            "detect",
            cache,
            "--probes",
            "missing",
            "--prompt-set",
            "physics",
            "--target",
            "v_squared",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("actstore: error: expected") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_numbers_are_refused(cache, capsys) -> None:
    rc, _, err = _run(
        capsys,
        "probe",
        "fit",
        cache,
        "--prompt-set",
        "arithmetic",
        "--target",
        "value",
        "--alphas",
        "a,b",
    )
    assert rc == 2 and "comma-separated numbers" in err


def test_standardize_edges_and_p_values_on_the_command_line(cache, capsys) -> None:
    """Issue 12: --standardize and the edge flag in `probe fit`, p-values in `detect --json`."""
    from actstore.analysis import fit_probes, load_probes

    base = ("probe", "fit", cache, "--prompt-set", "arithmetic", "--target", "value")
    rc, out, err = _run(capsys, *base, "--standardize", "--name", "s", "--json")
    assert rc == 0
    fitted = json.loads(out)
    assert fitted["lineage"]["standardize"] is True and fitted["alpha_relative"] is True
    # The same fit through the library (an independent call) gives the same numbers.
    ref = fit_probes(cache, prompt_set="arithmetic", target="value", standardize=True)
    assert [r["cv_r2"] for r in fitted["layers"]] == [r["cv_r2"] for r in ref.metrics()]
    edges = [r for r in fitted["layers"] if r["alpha_at_edge"]]
    # Layers still at an edge are named in one warning line on stderr.
    lines = [ln for ln in err.splitlines() if "end of the searched grid" in ln]
    assert len(lines) == (1 if edges else 0)
    for r in edges:
        assert f"{r['layer']} ({r['alpha_at_edge']})" in lines[0]
    assert load_probes(cache, name="s").metrics() == ref.metrics()
    rc, out, _ = _run(
        capsys, "detect", cache, "--probes", "s", "--prompt-set", "physics", "--target",
        "v_squared", "--json", "--permutations", "119", "--no-write",
    )  # fmt: skip
    assert rc == 0
    det = json.loads(out)
    assert det["significance"]["correction"] == "Holm-Bonferroni"
    assert det["significance"]["permutations"] == 119
    layer15 = next(r for r in det["layers"] if r["layer"] == 15)
    assert layer15["p_value"] == pytest.approx(1 / 120) and layer15["beats_chance"] is True
    assert len(det["significance"]["conclusions"]) == 4
    rc, out, _ = _run(
        capsys, "detect", cache, "--probes", "s", "--prompt-set", "physics", "--target",
        "v_squared", "--permutations", "0", "--no-write",
    )  # fmt: skip
    assert rc == 0 and "beats chance" not in out


def _strict_json(text: str):
    """Parse as standard JSON: a NaN/Infinity literal (Python's extension) is an error."""

    def refuse(literal: str):
        raise ValueError(f"non-standard JSON literal {literal}")

    return json.loads(text, parse_constant=refuse)


def test_json_output_has_no_nan_literals(tmp_path, capsys) -> None:
    """breaker12: mean_diff's log-loss, classification p-values and undefined fold R² are NaN;
    ``--json`` printed them as ``NaN``, which jq, JavaScript and most JSON parsers reject."""
    from tests.analysis._class_data import class_cache, class_set

    url = str(tmp_path / "c.zarr")
    class_cache(url, class_set(n=40, n_classes=2, seed=0))
    rc, out, _ = _run(
        capsys, "probe", "fit", url, "--prompt-set", "ops", "--target", "label", "--kind",
        "mean_diff", "--name", "md", "--json", "--quiet",
    )  # fmt: skip
    assert rc == 0
    fitted = _strict_json(out)
    assert all(r["cv_log_loss"] is None for r in fitted["layers"])  # NaN by design -> null
    rc, out, _ = _run(capsys, "probe", "show", url, "--name", "md", "--json")
    assert _strict_json(out)["layers"] == fitted["layers"]
    rc, out, _ = _run(
        capsys, "detect", url, "--probes", "md", "--prompt-set", "ops", "--target", "label",
        "--permutations", "5", "--no-write", "--json", "--per-prompt",
    )  # fmt: skip
    assert rc == 0
    det = _strict_json(out)
    assert all(r["p_value"] is None for r in det["layers"])  # no shuffled refits for mean_diff
    assert all(r["p_value_random_target"] is not None for r in det["layers"])
