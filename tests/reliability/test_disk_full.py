"""Disk full: extraction into a small tmpfs stops with DiskFullError; after space is freed the
same command resumes to a cache identical to an uninterrupted one.

Needs mounting a tmpfs (root with CAP_SYS_ADMIN, as here and in CI); skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import actstore
from actstore.errors import DiskFullError
from tests.reliability._harness import cache_files, diff, make_job, run_cli


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _grow(path: Path, size: str) -> None:
    """Free space: enlarge the mounted tmpfs in place (the files stay)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


@pytest.fixture(scope="module")
def job_and_reference(tiny_qwen2_dir, tmp_path_factory):
    """The job and its uninterrupted cache, written at the same path the tests use."""
    tmp = tmp_path_factory.mktemp("diskfull")
    job = make_job(tiny_qwen2_dir, tmp)
    mnt = tmp / "mnt"
    with _tmpfs(mnt, "16m"):
        assert job.extract(mnt / "cache.zarr").complete
        shutil.copytree(mnt / "cache.zarr", tmp / "reference.zarr")
    return job, tmp / "reference.zarr", mnt


# 96k: the disk fills while the cache and its metadata are created; 320k: after some blocks
@pytest.mark.parametrize("size", [pytest.param("96k", marks=pytest.mark.slow), "320k"])
def test_disk_full_stops_clearly_then_resumes_identically(size, job_and_reference):
    job, reference, mnt = job_and_reference
    out = mnt / "cache.zarr"
    with _tmpfs(mnt, size):
        with pytest.raises(DiskFullError, match="free space and re-run") as info:
            job.extract(out)
        assert str(mnt) in str(info.value)
        if (out / "zarr.json").exists():  # what was written opens (incomplete) or refuses clearly
            with (
                contextlib.suppress(actstore.errors.ActstoreError),
                pytest.warns(actstore.errors.IncompleteCacheWarning),
            ):
                actstore.open(out)
        _grow(mnt, "16m")
        report = job.extract(out)
        assert report.complete
        assert diff(cache_files(reference), cache_files(out)) == []


@pytest.mark.slow
def test_cli_disk_full_message_and_same_command_resumes(job_and_reference):
    job, reference, mnt = job_and_reference
    out = mnt / "cache.zarr"
    with _tmpfs(mnt, "320k"):
        r = run_cli(job.argv(out))
        assert r.returncode == 2, r.stderr
        last = r.stderr.strip().splitlines()[-1]  # before it: transformers' loading bar
        assert last.startswith("actstore: error: expected free space in"), r.stderr
        assert "re-run the same command" in last
        assert "Traceback" not in r.stderr
        _grow(mnt, "16m")
        r = run_cli(job.argv(out))
        assert r.returncode == 0, r.stderr
        assert diff(cache_files(reference), cache_files(out)) == []


@pytest.mark.parametrize("budget", [pytest.param(6_000, marks=pytest.mark.slow), 250_000])
def test_enospc_after_n_bytes_without_root(budget, job_and_store_only, monkeypatch):
    """The same promise where no tmpfs can be mounted: zarr's local write function (and the
    ``writev`` of actstore's shard files) raise ENOSPC once *budget* bytes are written (6 kB:
    during creation; 250 kB: after some blocks)."""
    import errno
    import os

    import zarr.storage._local as local

    job, reference, out = job_and_store_only
    real_put, state = local._put, {"left": budget}

    def put(path, value, exclusive=False):
        n = len(value.as_buffer_like())
        if n > state["left"]:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        state["left"] -= n
        return real_put(path, value, exclusive)

    real_writev = os.writev

    def writev(fd, buffers):  # actstore's own shard-file write (.partial + rename)
        n = sum(len(memoryview(b).cast("B")) for b in buffers)
        if n > state["left"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        state["left"] -= n
        return real_writev(fd, buffers)

    monkeypatch.setattr(local, "_put", put)
    monkeypatch.setattr(os, "writev", writev)
    with pytest.raises(DiskFullError, match="free space and re-run"):
        job.extract(out)
    assert not list(out.rglob("*.partial"))  # a failed write removes its temporary file
    state["left"] = 10**12  # space freed
    assert job.extract(out).complete
    assert diff(cache_files(reference), cache_files(out)) == []


@pytest.fixture
def job_and_store_only(tiny_qwen2_dir, tmp_path):
    job = make_job(tiny_qwen2_dir, tmp_path)
    out = tmp_path / "cache.zarr"
    assert job.extract(out).complete
    reference = tmp_path / "reference.zarr"
    out.rename(reference)  # same --out path for both runs: the recorded command is identical
    return job, reference, out
