"""The whole pipeline from one config on a tiny model: cache, probes, detection, figures, report.

Also the stage bookkeeping: a second run skips everything, a changed probe config re-runs only
what depends on it, and a single stage can be forced alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import actstore
from actstore.analysis import load_probes
from actstore.experiment import parse_config
from actstore.experiment._run import ExperimentRun, build_prompt_set

CONFIG = """
name = "itest"
description = "integration test"
[[prompt_sets]]
name = "arithmetic"
[[prompt_sets.sources]]
generator = "multiplication"
n = 60
seed = 0
[[prompt_sets.sources]]
generator = "squaring"
n = 40
seed = 1
[[prompt_sets]]
name = "physics"
[[prompt_sets.sources]]
generator = "kinetic_energy"
n = 6
seed = 2
options = { cot = "worked" }
[extract]
layers = [1, -1]
dtype = "float32"
device = "cpu"
max_batch_tokens = 2048
[[probes]]
name = "last"
prompt_set = "arithmetic"
target = "value"
position = "last"
alphas = [0.1, 10.0]
cv = 3
[[probes]]
name = "before"
prompt_set = "arithmetic"
target = "value"
position = "before:answer"
alphas = [1.0]
cv = 3
[detect]
prompt_set = "physics"
target = "v_squared"
span = "v_squared"
[report]
n_problems = 2
"""


@pytest.fixture(scope="module")
def finished_run(tiny_qwen2_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("run")
    cfg = parse_config(tomllib.loads(CONFIG))
    lines: list[str] = []
    run = ExperimentRun(cfg, out=out, model=tiny_qwen2_dir, log=lines.append)
    records = run.run()
    return run, records, lines


def test_every_stage_ran_with_timing(finished_run) -> None:
    _, records, lines = finished_run
    keys = [r.stage for r in records]
    assert keys == [
        "extract:arithmetic",
        "extract:physics",
        "probes:last",
        "probes:before",
        "detect:last",
        "detect:before",
        "plots",
        "report",
    ]
    assert all(r.status == "ran" and r.seconds > 0 for r in records)
    assert any(" done in " in line for line in lines)


def test_cache_holds_both_sets_with_resolved_layers(finished_run) -> None:
    run, _, _ = finished_run
    tree = actstore.open(run.cache_url)
    for name, n in (("arithmetic", 100), ("physics", 6)):
        ds = tree[name].to_dataset()
        assert ds.sizes["prompt"] == n
        assert list(ds["layer"].values) == [1, 3]  # [1, -1] on a 4-layer model
    texts = list(tree["arithmetic"].to_dataset()["text"].values)
    assert texts == [p.text for p in build_prompt_set(run.config, "arithmetic").prompts]


def test_probes_saved_and_match_results_json(finished_run) -> None:
    run, _, _ = finished_run
    for name in ("last", "before"):
        probes = load_probes(run.cache_url, name=name)
        assert probes.layers == [1, 3]
        saved = json.loads((run.results_dir / f"probes_{name}.json").read_text())
        assert [r["cv_r2"] for r in saved["layers"]] == pytest.approx(
            [r["cv_r2"] for r in probes.metrics()]
        )


def test_detection_variables_written_for_real_tokens_only(finished_run) -> None:
    run, _, _ = finished_run
    ds = xr.open_zarr(run.cache_url, group="physics", zarr_format=3, consolidated=False)
    n_tokens = ds["n_tokens"].values
    for name in ("pred_last", "pred_before"):
        pred = ds[name]
        assert pred.dims[:3] == ("prompt", "layer", "token")
        values = pred.values
        values = values[..., 0] if values.ndim == 4 else values
        for p, n in enumerate(n_tokens):
            assert np.isfinite(values[p, :, :n]).all()
            assert np.isnan(values[p, :, n:]).all()


def test_figures_and_reports(finished_run) -> None:
    run, _, _ = finished_run
    for name in ("last", "before"):
        pngs = sorted((run.out / "report" / name).glob("*.png"))
        assert len(pngs) == 4, pngs
        assert all(p.stat().st_size > 1000 for p in pngs)
        assert (run.out / "report" / name / "report.md").stat().st_size > 0
    index = run.report_path.read_text()
    assert "Probe 'last'" in index and "Probe 'before'" in index
    assert "report/last/report.md" in index
    html = (run.out / "report.html").read_text()
    assert "<table>" in html and "report/last/report.html" in html


def test_second_run_skips_everything(finished_run) -> None:
    run, _, _ = finished_run
    again = ExperimentRun(run.config, out=run.out, model=run.model, log=lambda s: None).run()
    assert {r.status for r in again} == {"skipped"}


def test_changed_probe_reruns_only_what_depends_on_it(finished_run, tmp_path: Path) -> None:
    run, _, _ = finished_run
    text = CONFIG.replace("alphas = [1.0]", "alphas = [1.0, 100.0]")
    cfg = parse_config(tomllib.loads(text))
    out = tmp_path / "out"  # a copy: the shared run keeps the probes of its own config
    shutil.copytree(run.out, out)
    changed = ExperimentRun(cfg, out=out, model=run.model, log=lambda s: None)
    records = changed.run()
    ran = {r.stage for r in records if r.status == "ran"}
    assert ran == {"probes:before", "detect:before", "plots", "report"}
    probes = load_probes(changed.cache_url, name="before")
    assert probes.lineage["alphas"] == [1.0, 100.0]  # as asked; the searched grid may extend it
    assert {1.0, 100.0} <= set(probes.dataset["alpha_grid"].values)


def test_single_stage_forced(finished_run) -> None:
    run, _, _ = finished_run
    records = ExperimentRun(run.config, out=run.out, model=run.model, log=lambda s: None).run(
        ["detect"], force=True
    )
    assert [(r.stage, r.status) for r in records] == [
        ("detect:last", "ran"),
        ("detect:before", "ran"),
    ]


def test_cli_check_and_missing_model(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    ok = subprocess.run(
        [sys.executable, "-m", "actstore", "run", str(cfg), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "actstore", "run", str(cfg), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("actstore: error: no model given and prompt set 'arithmetic'")
    assert "Traceback" not in bad.stderr


def test_cache_filled_elsewhere_is_analysed_without_a_model(finished_run, tmp_path: Path) -> None:
    """Copy only the cache (as after a cluster job) and run the analysis stages without a model."""
    import shutil

    run, _, _ = finished_run
    out = tmp_path / "laptop"
    out.mkdir()
    shutil.copytree(run.cache_url, out / "cache.zarr")
    lines: list[str] = []
    records = ExperimentRun(run.config, out=out, model=None, log=lines.append).run(
        ["extract", "probes"]
    )
    assert [(r.stage, r.status) for r in records][:2] == [
        ("extract:arithmetic", "skipped"),
        ("extract:physics", "skipped"),
    ]
    assert any("no model needed" in line for line in lines)
    moved = json.loads((out / "results" / "probes_last.json").read_text())
    original = json.loads((run.results_dir / "probes_last.json").read_text())
    assert [r["cv_r2"] for r in moved["layers"]] == pytest.approx(
        [r["cv_r2"] for r in original["layers"]]
    )


def test_demo_report_puts_models_side_by_side(finished_run, tmp_path: Path) -> None:
    from actstore.experiment._demo import demo_config, write_demo_report

    run, _, _ = finished_run
    path = write_demo_report(tmp_path, {"trained": run, "random": run})
    text = path.read_text()
    rows = json.loads((run.results_dir / "probes_last.json").read_text())["layers"]
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {rows[0]['layer']} |"))
    assert f"{rows[0]['cv_r2']:.3g}" in line
    assert "trained cv_r2" in text and "random shuffled cv_r2" in text
    assert "<table>" in (tmp_path / "report.html").read_text()
    # The tables also go to results.md (no timestamp), with both controls and a verdict per layer.
    results = (tmp_path / "results.md").read_text()
    det = json.loads((run.results_dir / "detect_last.json").read_text())["layers"][0]
    line = next(
        ln
        for ln in results.split("probe 'last'", 1)[1].splitlines()
        if ln.startswith("| ") and ln.split("|")[1].strip() == str(det["layer"])
    )
    assert f"| {det['shuffled_probe_mean_min_error']:.3g} |" in line
    assert f"| {det['random_target_mean_min_error']:.3g} |" in line
    assert "trained verdict" in results and f"- Layer {det['layer']}: " in results
    assert write_demo_report(tmp_path, {"trained": run, "random": run}) and (
        (tmp_path / "results.md").read_text() == results
    )
    # make demo-docs: results.md -> docs file, headline -> the demo tutorial's block.
    from actstore.experiment._demo_results import BEGIN, END, headline_section, update_docs

    tutorial = tmp_path / "demo.md"
    tutorial.write_text(f"# x\n{BEGIN}\n{END}\n")
    update_docs(tmp_path, docs=tmp_path / "docs" / "demo-results.md", tutorial=tutorial)
    assert (tmp_path / "docs" / "demo-results.md").read_text().startswith(results)
    assert headline_section(results) in tutorial.read_text()
    # The shipped demo config parses and probes the interaction term beside the value.
    assert {p.target for p in demo_config().probes} == {"value", "interaction"}


def test_cli_json_prints_the_records_alone(finished_run, tmp_path: Path) -> None:
    """``actstore run ... --json | jq`` works: the stage log goes to stderr, stdout is JSON."""
    run, _, _ = finished_run
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    argv = [sys.executable, "-m", "actstore", "run", str(cfg), "--out", str(run.out),
            "--stage", "report", "--force", "--json"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [(r["stage"], r["status"]) for r in records] == [("report", "ran")]
    assert "report: running" in done.stderr


def _strict(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


def test_results_files_are_standard_json(finished_run) -> None:
    """jq and JavaScript refuse NaN/Infinity literals: an undefined number is written as null."""
    run = finished_run[0]
    files = sorted(run.results_dir.glob("*.json"))
    assert files
    for path in files:
        json.loads(path.read_text(), parse_constant=_strict)
