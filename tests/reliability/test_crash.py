"""Crash anywhere: SIGKILL a real extraction at seeded kill points, resume, compare bit for bit.

Each kill point is a named event of the job, reached deterministically through a test-only hook
(``tests/reliability/_killhook.py``): a store write (``before`` it, ``mid``-write with half
the bytes in zarr's ``.partial`` file, ``after`` it landed, or ``torn``: half the bytes at the
final key, as on a filesystem without atomic rename) or a forward pass. They cover cache creation
and every metadata update, every phase of a shard write, the completion markers and the compute
between.
After each kill the cache opens (or refuses with a clear error), the same job resumes in a fresh
call, and the finished cache must equal an uninterrupted run's file for file, bit for bit.
"""

from __future__ import annotations

import random
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability._harness import SET, cache_files, diff, make_job, run_cli

pytestmark = pytest.mark.slow

SEED = 20261126
N_POINTS = 24


@dataclass(frozen=True)
class KillPoint:
    kind: str  # "put" or "forward"
    key: str
    occurrence: int
    phase: str
    category: str

    @property
    def spec(self) -> str:
        return f"{self.kind} {self.key} {self.occurrence} {self.phase}"


def _events(log: Path) -> list[tuple[str, str, int, str]]:
    out = []
    for line in log.read_text().splitlines():
        kind, key, occ, _nbytes, flag = line.split()
        out.append((kind, key, int(occ), flag))
    return out


def choose_points(events: list[tuple[str, str, int, str]], seed: int) -> list[KillPoint]:
    """Seeded kill points spread over the job, a quota per category (24 in all)."""
    rng = random.Random(seed)
    # canonical order: concurrent puts may be logged in another order, the set is the same
    events = sorted(set(events))
    set_meta = [e for e in events if e[1] == f"{SET}/zarr.json"]
    ready = max(set_meta, key=lambda e: e[2])
    shards = [e for e in events if e[1].startswith(f"{SET}/resid_post/c/")]
    markers = [e for e in events if e[1].startswith(f"{SET}/_blocks_done/c/")]
    forwards = [e for e in events if e[0] == "forward"]
    taken = {ready, *shards, *markers, *forwards}
    create = [e for e in events if e not in taken and e[3] != "exclusive"]
    exclusive = [e for e in events if e not in taken and e[3] == "exclusive"]
    first = [e for e in create if e[1] == "zarr.json" and e[2] <= 2]  # the cache's birth

    def pick(pool, n, phases, category):
        chosen = sorted(rng.sample(pool, min(n, len(pool))))
        return [
            KillPoint(kind=e[0], key=e[1], occurrence=e[2], phase=phases[i % len(phases)],
                      category=category)
            for i, e in enumerate(chosen)
        ]  # fmt: skip

    rest = [e for e in create if e not in first]
    points = pick(first, 2, ["mid", "after"], "create cache")
    points += pick(rest, 5, ["before", "mid", "after"], "create set metadata")
    points += pick(exclusive, 1, ["mid"], "create set metadata")
    points += pick([ready], 1, ["mid"], "set ready flag")
    points += pick([ready], 1, ["after"], "set ready flag")
    points += pick(shards, 7, ["before", "mid", "torn", "after"], "shard write")
    points += pick(markers, 4, ["before", "mid", "after"], "completion marker")
    points += pick(forwards, 3, ["before"], "forward pass")
    assert len(points) == N_POINTS, points
    return points


@dataclass(frozen=True)
class CrashJob:
    job: object
    out: Path  # every run writes here: the recorded command (with --out) must not differ
    reference: Path
    points: list[KillPoint]


@pytest.fixture(scope="module")
def crash_job(tiny_qwen2_dir, tmp_path_factory) -> CrashJob:
    tmp = tmp_path_factory.mktemp("crash")
    job = make_job(tiny_qwen2_dir, tmp)
    out, ref, log = tmp / "cache.zarr", tmp / "reference.zarr", tmp / "events.log"
    r = run_cli(
        job.argv(out), fault={"ACTSTORE_FAULT_ROOT": str(out), "ACTSTORE_FAULT_LOG": str(log)}
    )
    assert r.returncode == 0, r.stderr
    out.rename(ref)
    return CrashJob(job=job, out=out, reference=ref, points=choose_points(_events(log), SEED))


def _opens_or_refuses_clearly(out: Path) -> None:
    """Right after a kill: open() works (maybe warning "incomplete") or raises an ActstoreError."""
    import actstore
    from actstore.errors import ActstoreError

    if not out.exists():
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", actstore.errors.IncompleteCacheWarning)
            actstore.open(out)
    except ActstoreError:
        pass


@pytest.mark.parametrize("i", range(N_POINTS), ids=lambda i: f"kp{i:02d}")
def test_kill_and_resume_is_bit_identical(i, crash_job):
    from actstore.store import verify_cache

    point = crash_job.points[i]
    print(f"kill point {i}: {point.category}: {point.spec}")
    out = crash_job.out
    shutil.rmtree(out, ignore_errors=True)
    fault = {"ACTSTORE_FAULT_ROOT": str(out), "ACTSTORE_FAULT_KILL": point.spec}
    r = run_cli(crash_job.job.argv(out), fault=fault)
    assert r.returncode == -9, f"{point.spec} was not reached (exit {r.returncode}): {r.stderr}"
    _opens_or_refuses_clearly(out)
    report = crash_job.job.extract(out)
    assert report.complete, report.message
    assert diff(cache_files(crash_job.reference), cache_files(out)) == []
    assert verify_cache(out).ok
