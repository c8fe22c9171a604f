"""An install without extras: commands that need one say which, in one line (issue 10, item 8).

The install is simulated, not our code: a ``sitecustomize`` on ``PYTHONPATH`` puts a meta-path
finder first that raises ``ModuleNotFoundError`` for the modules an extra would install (torch,
transformers, ...), so ``import torch`` fails in the child process exactly as it does where torch
was never installed. Commands that need no extra (info, probe fit) must keep working there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import actstore

_SRC = str(Path(actstore.__file__).resolve().parents[1])
EXTRACT = "torch,transformers,accelerate,tokenizers,safetensors"

_BLOCKER = """
import os, sys

_BLOCKED = {m for m in os.environ.get("ACTSTORE_TEST_BLOCK", "").split(",") if m}


class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, tiny_qwen2_dir: Path) -> Path:
    from tests._fixtures.store import make_synthetic, write_synthetic

    root = tmp_path_factory.mktemp("noextras")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(_BLOCKER)
    write_synthetic(root / "c.zarr", make_synthetic())
    (root / "model").symlink_to(tiny_qwen2_dir)
    return root


def _run(site: Path, blocked: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site / "site"), _SRC, os.environ.get("PYTHONPATH", "")]),
        "ACTSTORE_TEST_BLOCK": blocked,
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_blocker_simulates_a_missing_package(site: Path) -> None:
    proc = _run(site, EXTRACT, "-c", "import torch")
    assert proc.returncode == 1 and "No module named 'torch'" in proc.stderr


_EXTRACT_ARGS = ("--model", "model", "--prompts", "multiplication", "--n", "3", "--out", "e.zarr")


@pytest.mark.parametrize(
    ("blocked", "args", "extra", "module"),
    [
        (EXTRACT, ("extract", *_EXTRACT_ARGS), "extract", "torch"),
        (EXTRACT, ("extract", *_EXTRACT_ARGS, "--dry-run"), "extract", "torch"),
        ("transformers", ("extract", *_EXTRACT_ARGS), "extract", "transformers"),
        (EXTRACT, ("demo", "--out", "d", "--model-cache", "m"), "extract", "torch"),
        ("transformer_lens", ("extract", *_EXTRACT_ARGS, "--backend", "tlens"), "tlens", None),
        ("s3fs", ("info", "s3://bucket/c.zarr"), "s3", None),
        ("s3fs", ("copy", "c.zarr", "s3://bucket/c.zarr"), "s3", None),
    ],
)
def test_missing_extra_is_one_line(
    site: Path, blocked: str, args: tuple[str, ...], extra: str, module: str | None
) -> None:
    proc = _run(site, blocked, "-m", "actstore", *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("actstore: error: expected the `"), lines[0]
    assert f"pip install 'actstore[{extra}]'" in lines[0]
    if module is not None:
        assert f"no module named {module!r}" in lines[0]
    assert not (site / "e.zarr").exists()


def test_run_with_a_model_needs_the_extract_extra(site: Path) -> None:
    (site / "run.toml").write_text(
        'name = "x"\n[[prompt_sets]]\nname = "a"\n[[prompt_sets.sources]]\n'
        'generator = "multiplication"\nn = 3\n[extract]\nlayers = [0]\n'
    )
    proc = _run(
        site, EXTRACT, "-m", "actstore", "run", "run.toml", "--model", "model", "--out", "r"
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("pip install 'actstore[extract]'")
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_import_error(site: Path) -> None:
    proc = _run(site, EXTRACT, "-m", "actstore", "--debug", "extract", *_EXTRACT_ARGS)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ModuleNotFoundError" in proc.stderr


def test_api_raises_missing_extra_error(site: Path) -> None:
    code = (
        "from actstore.errors import MissingExtraError\n"
        "from actstore.extractors import extract\n"
        "try:\n"
        "    extract(model='model', prompts='multiplication', n_prompts=3, out='e.zarr')\n"
        "except MissingExtraError as exc:\n"
        "    assert isinstance(exc, ImportError) and exc.__cause__ is not None\n"
        "    print('OK', exc)\n"
    )
    proc = _run(site, EXTRACT, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK expected the `extract` extra")


def test_analysis_needs_no_extra(site: Path) -> None:
    """Reading and analysing a cache works where none of the extras is installed."""
    blocked = f"{EXTRACT},transformer_lens,s3fs"
    for args in (
        ("info", "c.zarr"),
        ("probe", "fit", "c.zarr", "--prompt-set", "arith", "--target", "value", "--cv", "3"),
    ):
        proc = _run(site, blocked, "-m", "actstore", *args)
        assert proc.returncode == 0, proc.stderr


def test_run_without_a_model_needs_no_extra(site: Path) -> None:
    """A run folder filled where torch is installed is analysed where it is not."""
    from actstore.experiment import parse_config
    from actstore.experiment._run import ExperimentRun

    text = (
        'name = "x"\n[[prompt_sets]]\nname = "a"\n[[prompt_sets.sources]]\n'
        'generator = "multiplication"\nn = 8\n[extract]\nlayers = [0]\ndevice = "cpu"\n'
        '[[probes]]\nname = "last"\nprompt_set = "a"\ntarget = "value"\ncv = 2\n'
    )
    (site / "laptop.toml").write_text(text)
    import tomllib

    ExperimentRun(
        parse_config(tomllib.loads(text)),
        out=site / "lap",
        model=site / "model",
        log=lambda s: None,
    ).run(["extract"])
    blocked = f"{EXTRACT},transformer_lens,s3fs"
    proc = _run(site, blocked, "-m", "actstore", "run", "laptop.toml", "--out", "lap")
    assert proc.returncode == 0, proc.stderr
    assert "model: `" in (site / "lap" / "report.md").read_text()
