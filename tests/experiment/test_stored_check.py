"""`actstore run` reuses stored data only when it is what the config asks for (issue 10, item 2).

A cache left in ``--out`` by one config (30 prompts, seed 100, layers 0 and 1) must not be analysed
by another (50 prompts, seed 0, all 4 layers): every stage that reads stored data (the extract-stage
skip, probes alone, detect with saved probes, the report) compares the stored fingerprint with the
config field by field and refuses naming the field. The report names the cache's real model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from actstore.analysis import fit_probes, save_probes
from actstore.errors import FingerprintMismatchError
from actstore.experiment import parse_config
from actstore.experiment._run import ExperimentRun
from actstore.extractors import weights_fingerprint
from actstore.store import open_cache

BASE = """
name = "stored"
[[prompt_sets]]
name = "arith"
[[prompt_sets.sources]]
generator = "multiplication"
n = 30
seed = 100
[[prompt_sets]]
name = "physics"
[[prompt_sets.sources]]
generator = "kinetic_energy"
n = 4
seed = 2
options = { cot = "worked" }
[extract]
layers = [0, 1]
hooks = ["resid_post"]
dtype = "float32"
device = "cpu"
[[probes]]
name = "last"
prompt_set = "arith"
target = "value"
position = "last"
cv = 3
[detect]
prompt_set = "physics"
target = "v_squared"
span = "v_squared"
[report]
n_problems = 1
"""


def _cfg(text: str):
    return parse_config(tomllib.loads(text))


@pytest.fixture(scope="module")
def base_run(tiny_qwen2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ExperimentRun:
    out = tmp_path_factory.mktemp("stored") / "out"
    run = ExperimentRun(_cfg(BASE), out=out, model=tiny_qwen2_dir, log=lambda s: None)
    run.run()
    return run


def _copy(run: ExperimentRun, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(run.out, out)
    return out


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_cache_of_another_config_is_refused_and_nothing_is_overwritten(
    base_run: ExperimentRun, tmp_path: Path
) -> None:
    """The issue's case, small: 50 prompts, seed 0, 4 layers asked; 30, seed 100, 2 stored."""
    out = _copy(base_run, tmp_path)
    text = BASE.replace("n = 30\nseed = 100", "n = 50\nseed = 0").replace(
        "layers = [0, 1]", 'layers = "all"'
    )
    before = _digest(out)
    with pytest.raises(FingerprintMismatchError) as info:
        ExperimentRun(_cfg(text), out=out, log=lambda s: None).run()
    msg = str(info.value)
    assert "prompt set 'arith'" in msg and "prompts" in msg
    assert "(50 prompts, hash" in msg and "got 30 prompts, hash" in msg
    assert "another --out" in msg
    assert _digest(out) == before  # probes, results, report.md untouched

    # The same through the command line: one line, exit 2, no traceback.
    cfg = tmp_path / "b.toml"
    cfg.write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "actstore", "run", str(cfg), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("actstore: error: expected prompt set 'arith'")
    assert "Traceback" not in proc.stderr
    assert _digest(out) == before


@pytest.mark.parametrize(
    ("old", "new", "field", "asked", "stored"),
    [
        ("seed = 100", "seed = 0", "prompts", "30 prompts", "30 prompts"),
        ("n = 30", "n = 31", "prompts", "31 prompts", "30 prompts"),
        ("layers = [0, 1]", "layers = [0, 2]", "layers", "[0, 2]", "[0, 1]"),
        ("layers = [0, 1]", 'layers = "spaced:2"', "layers", "[2, 3]", "[0, 1]"),
        ('hooks = ["resid_post"]', 'hooks = ["resid_pre"]', "hooks", "['resid_pre']", None),
        ('dtype = "float32"', 'dtype = "float16"', "dtype", "float16", "float32"),
    ],
)
def test_each_differing_field_is_named(
    base_run: ExperimentRun,
    tmp_path: Path,
    old: str,
    new: str,
    field: str,
    asked: str,
    stored: str | None,
) -> None:
    out = _copy(base_run, tmp_path)
    assert old in BASE
    with pytest.raises(FingerprintMismatchError) as info:
        ExperimentRun(_cfg(BASE.replace(old, new)), out=out, log=lambda s: None).run()
    msg = str(info.value)
    assert f"the config's {field} (" in msg, msg
    assert asked in msg.split("got")[0]
    if stored is not None:
        assert stored in msg.split("got")[1]


def test_another_model_is_named(
    base_run: ExperimentRun, tmp_path: Path, tiny_model_factory
) -> None:
    other = tiny_model_factory("qwen2", seed=1)
    out = _copy(base_run, tmp_path)
    with pytest.raises(FingerprintMismatchError) as info:
        ExperimentRun(_cfg(BASE), out=out, model=other, log=lambda s: None).run()
    msg = str(info.value)
    assert "the config's model (" in msg
    assert weights_fingerprint(other) in msg and weights_fingerprint(base_run.model) in msg


def test_same_config_and_model_reuse_the_cache(base_run: ExperimentRun, tmp_path: Path) -> None:
    out = _copy(base_run, tmp_path)
    records = ExperimentRun(_cfg(BASE), out=out, model=base_run.model, log=lambda s: None).run()
    assert {r.status for r in records} == {"skipped"}
    records = ExperimentRun(_cfg(BASE), out=out, log=lambda s: None).run()
    assert {r.status for r in records} == {"skipped"}


@pytest.mark.parametrize("stage", ["probes", "detect", "plots", "report"])
def test_a_stage_run_alone_checks_the_stored_data(
    base_run: ExperimentRun, tmp_path: Path, stage: str
) -> None:
    out = _copy(base_run, tmp_path)
    text = BASE.replace("n = 30", "n = 20")
    with pytest.raises(FingerprintMismatchError, match="the config's prompts"):
        ExperimentRun(_cfg(text), out=out, log=lambda s: None).run([stage], force=True)


def test_detect_refuses_saved_probes_of_another_probe_config(
    base_run: ExperimentRun, tmp_path: Path
) -> None:
    """Probes saved by another config (position before:answer) are not used by detect."""
    out = _copy(base_run, tmp_path)
    cache = open_cache(out / "cache.zarr", mode="r+")
    other = fit_probes(cache, prompt_set="arith", target="value", position="before:answer", cv=3)
    save_probes(other, cache, name="last")
    for stage in ("detect", "plots", "report"):
        with pytest.raises(FingerprintMismatchError) as info:
            ExperimentRun(_cfg(BASE), out=out, log=lambda s: None).run([stage], force=True)
        assert "saved probes 'last'" in str(info.value)
        assert "position (last), got before:answer" in str(info.value)
    # Re-fitting as the message says makes the config's probes the saved ones again.
    ExperimentRun(_cfg(BASE), out=out, log=lambda s: None).run(["probes", "detect"], force=True)


def test_report_names_the_model_of_the_cache(base_run: ExperimentRun, tmp_path: Path) -> None:
    out = tmp_path / "laptop"
    out.mkdir()
    shutil.copytree(base_run.cache_url, out / "cache.zarr")
    ExperimentRun(_cfg(BASE), out=out, log=lambda s: None).run()
    text = (out / "report.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("- model:"))
    assert "None" not in line
    assert str(Path(base_run.model)) in line
    assert weights_fingerprint(base_run.model) in line
