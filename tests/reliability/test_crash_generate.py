"""Kill a generated-continuation extraction (``--generate``) mid-run, resume, compare bit for bit.

Kill points (named store writes and forward passes, reached the same way on every run): while the
prompt set is created (its continuation is being stored: resume generates again, greedy, the same),
as it is marked ready, inside a shard write, after a completion marker, and before a capture
forward pass. The resumed cache must equal an uninterrupted run's, file for file.
"""

from __future__ import annotations

import shutil

import pytest

from tests.reliability._harness import SET, cache_files, diff, make_job, run_cli

pytestmark = pytest.mark.slow

GEN = ("--generate", "5", "--find-span", "num=regex:\\d+")


def _events(log):
    out = []
    for line in log.read_text().splitlines():
        kind, key, occ, _nbytes, flag = line.split()
        out.append((kind, key, int(occ), flag))
    return out


@pytest.fixture(scope="module")
def gen_job(tiny_qwen2_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crash_generate")
    job = make_job(tiny_qwen2_dir, tmp)
    out, ref, log = tmp / "cache.zarr", tmp / "reference.zarr", tmp / "events.log"
    fault = {"ACTSTORE_FAULT_ROOT": str(out), "ACTSTORE_FAULT_LOG": str(log)}
    r = run_cli(job.argv(out, *GEN), fault=fault)
    assert r.returncode == 0, r.stderr
    out.rename(ref)
    events = sorted(set(_events(log)))
    set_meta = [e for e in events if e[1] == f"{SET}/zarr.json"]
    ready = max(set_meta, key=lambda e: e[2])
    token_ids = [e for e in events if e[1].startswith(f"{SET}/token_id/")]
    shards = [e for e in events if e[1].startswith(f"{SET}/resid_post/c/")]
    markers = [e for e in events if e[1].startswith(f"{SET}/_blocks_done/c/")]
    forwards = [e for e in events if e[0] == "forward"]
    assert token_ids and len(shards) > 2 and markers and len(forwards) > 2
    points = [
        (token_ids[0], "mid"),
        (ready, "mid"),
        (shards[len(shards) // 2], "mid"),
        (shards[len(shards) // 2], "torn"),
        (markers[len(markers) // 2], "after"),
        (forwards[len(forwards) // 2], "before"),
    ]
    specs = [f"{e[0]} {e[1]} {e[2]} {phase}" for e, phase in points]
    return job, out, ref, specs


@pytest.mark.parametrize("i", range(6))
def test_kill_and_resume_generated_run_is_bit_identical(i, gen_job):
    job, out, ref, specs = gen_job
    shutil.rmtree(out, ignore_errors=True)
    fault = {"ACTSTORE_FAULT_ROOT": str(out), "ACTSTORE_FAULT_KILL": specs[i]}
    r = run_cli(job.argv(out, *GEN), fault=fault)
    assert r.returncode == -9, f"{specs[i]} was not reached (exit {r.returncode}): {r.stderr}"
    r = run_cli(job.argv(out, *GEN))
    assert r.returncode == 0, r.stderr
    assert diff(cache_files(ref), cache_files(out)) == []
