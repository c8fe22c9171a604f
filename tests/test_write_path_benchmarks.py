"""The write-path benchmarks run, their ratios are their own figures' ratios, and
docs/write-path.md holds tables those scripts wrote (not typed by hand)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "write-path.md"


def _run(script: str, *args: str, timeout: int = 600) -> str:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def _rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| ") and "---" not in line
    ]


def _num(cell: str) -> float:
    return float(re.search(r"-?[\d,]+(\.\d+)?", cell).group(0).replace(",", ""))


@pytest.mark.slow
def test_gpu_node_smoke_runs_and_its_ratios_are_its_own() -> None:
    out = _run("gpu_node.py", "--smoke")
    rows = _rows(out)
    bare = next(r for r in rows if r[0].startswith("(a)"))
    ext = [r for r in rows if r[0].startswith("(b) extract")]
    assert len(ext) == 2
    for r in ext:
        # the printed seconds are rounded to 0.01 s: the printed ratio lies within the ratios
        # those roundings allow (smoke times are a few hundredths of a second)
        b, a = _num(r[1]), _num(bare[1])
        lo, hi = max(b - 0.005, 0.0) / (a + 0.005), (b + 0.005) / max(a - 0.005, 1e-9)
        assert lo - 0.011 <= _num(r[2]) <= hi + 0.011, r
    enc = next(r for r in rows if r[0].startswith("numcodecs"))
    pool = next(r for r in rows if r[0].startswith("actstore write_block"))
    want = _num(pool[1]) / _num(enc[1])
    assert abs(_num(pool[2]) - want) <= 0.01 + 0.01 * want, (pool, enc)
    assert "--smoke" in out


@pytest.mark.slow
def test_write_path_benchmark_small_runs_every_row_and_reads_back() -> None:
    out = _run("write_path.py", "--shards", "1", "--repeat", "1", "--d-model", "256")
    rows = _rows(out)
    names = [r[0] for r in rows[1:]]
    assert names[0].startswith("numcodecs zstd-1 encode")
    assert any(n.startswith("zarr-python") for n in names)
    assert any(n.startswith("actstore write_block") for n in names)
    assert _num(rows[1][2]) == 1.0
    assert "read back bit-exactly" in out


def test_docs_hold_the_benchmarks_tables() -> None:
    text = DOC.read_text()
    for name, script in (
        ("write-path-table", "write_path.py"),
        ("codec-table", "codecs.py"),
        ("extract-table", "extract.py"),
    ):
        body = text.split(f"<!-- BEGIN {name} -->", 1)[1].split(f"<!-- END {name} -->", 1)[0]
        assert "Machine: " in body, name
        assert f"benchmarks/{script} --write-docs" in body, name
        assert _rows(body), name
