"""Outputs written with plain file I/O refuse a URL instead of writing a local folder ``s3:``.

Found trying issue 10 (item 9) as a new user: ``actstore report ... --out s3://bucket/r`` wrote
``./s3:/bucket/r/report.html`` and said it was done; so did ``plot``, ``export``, ``prompts
write`` and ``run``. A ``file://`` URL names a local path and is accepted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from actstore.errors import InvalidArgumentError

URLS = ["s3://bucket/out", "zip::file:///tmp/x.zip", "gs://b/o", "memory://x"]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actstore", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ}, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ["prompts", "write", "multiplication", "s3://bucket/p.jsonl", "--n", "2"],
        ["export", "missing.zarr", "--format", "npy", "--out", "s3://bucket/ex"],
        ["run", "cfg.toml", "--out", "s3://bucket/run"],
    ],
    ids=["prompts-write", "export", "run"],
)
def test_cli_refuses_url_for_local_output(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "cfg.toml").write_text(
        (
            Path(__file__).resolve().parents[2] / "experiments" / "velocity_computation.toml"
        ).read_text()
    )
    r = _cli(args, tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("actstore: error: expected a local path")
    assert "s3://bucket/" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.toml"]  # no folder 's3:'


@pytest.mark.parametrize("url", URLS)
def test_api_refuses_url(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from actstore.analysis._report import write_figures, write_report
    from actstore.prompts import generate
    from actstore.prompts._io import write_csv, write_jsonl
    from actstore.store import export_cache

    monkeypatch.chdir(tmp_path)
    ps = generate("multiplication", 2, seed=0)
    calls = [
        lambda: write_figures(None, None, url),  # type: ignore[arg-type]
        lambda: write_report(None, None, url),  # type: ignore[arg-type]
        lambda: write_jsonl(ps, url + ".jsonl"),
        lambda: write_csv(ps, url + ".csv"),
        lambda: export_cache("missing.zarr", url, format="npy"),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError, match="expected a local path"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_save_probes_npz_refuses_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import xarray as xr

    from actstore.analysis import ProbeSet
    from actstore.analysis._persist import save_probes

    monkeypatch.chdir(tmp_path)
    ds = xr.Dataset({"coef": (("layer", "d_model"), np.zeros((1, 2)))})
    ds.attrs["actstore_probe"] = {"target": "value"}
    ps = ProbeSet(ds)
    with pytest.raises(InvalidArgumentError, match="expected a local path"):
        save_probes(ps, "s3://bucket/p.npz")
    assert list(tmp_path.iterdir()) == []


def test_file_url_writes_the_local_path(tmp_path: Path) -> None:
    from actstore.prompts import generate, read_prompt_file
    from actstore.prompts._io import write_jsonl

    ps = generate("multiplication", 3, seed=1)
    write_jsonl(ps, f"file://{tmp_path}/p.jsonl")
    assert [p.text for p in read_prompt_file(tmp_path / "p.jsonl")] == [p.text for p in ps]
