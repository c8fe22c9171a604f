"""Concurrency: four ``--shard I/4`` workers fill one cache while a reader keeps opening it.

The reader must only ever see completed shards: every block recorded complete when it opened
reads exactly as in the single-process cache, the rest are announced by IncompleteCacheWarning
(or, before the prompt set exists, the open fails with a clear ActstoreError). The finished cache
equals the single-process one file for file (up to the recorded ``--shard`` command line).
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import actstore
from actstore.errors import ActstoreError, IncompleteCacheWarning
from tests.reliability._harness import BLOCK, N_BLOCKS, REPO, SET, cache_files, diff, env, make_job

pytestmark = pytest.mark.slow


def _read_completed(out, reference: np.ndarray) -> tuple[int, int]:
    """Open once; check every recorded block against the reference; return (recorded, total)."""
    from actstore.store import open_cache

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = actstore.open(out, group=SET)
        except ActstoreError:
            return 0, N_BLOCKS  # not created yet, or mid-creation: a clear error, no data
    missing = open_cache(out).missing_blocks(SET)  # listed after open: a superset of its view
    assert all(issubclass(w.category, IncompleteCacheWarning) for w in caught), [
        f"{w.category.__name__}: {w.message}" for w in caught
    ]
    if len(missing) and not caught:
        # blocks finished between the open and this listing are fine; a warning is expected
        # whenever open itself saw missing blocks, which it did if any is missing now
        info = open_cache(out).set_info(SET)  # what a failure needs to be told apart
        pytest.fail(
            f"open gave no incomplete warning while blocks {missing} were missing "
            f"(set ready now: {info.get('ready')}; the open returned {type(ds).__name__} with "
            f"variables {sorted(ds.variables)[:8]}, sizes {dict(ds.sizes)}, "
            f"attrs {sorted(ds.attrs)})"
        )
    recorded = [b for b in range(N_BLOCKS) if b not in missing]
    for b in recorded:
        got = ds["resid_post"].isel(prompt=slice(b * BLOCK, (b + 1) * BLOCK)).values
        np.testing.assert_array_equal(got, reference[b * BLOCK : (b + 1) * BLOCK])
    return len(recorded), N_BLOCKS


def test_four_shard_workers_and_a_reader(tiny_qwen2_dir, tmp_path):
    job = make_job(tiny_qwen2_dir, tmp_path)
    single, out = tmp_path / "single.zarr", tmp_path / "sharded.zarr"
    assert job.extract(single).complete
    reference = actstore.open(single, group=SET)["resid_post"].values
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "actstore", *job.argv(out, "--shard", f"{i}/4")],
            cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(4)
    ]  # fmt: skip
    seen = []
    while any(p.poll() is None for p in procs):
        seen.append(_read_completed(out, reference)[0])
        time.sleep(0.05)
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err
    assert _read_completed(out, reference)[0] == N_BLOCKS
    print(f"reader opened the cache {len(seen)} times; blocks seen complete: {sorted(set(seen))}")
    assert seen == sorted(seen), "completed blocks never disappear"
    assert (
        diff(cache_files(single, ignore_command=True), cache_files(out, ignore_command=True)) == []
    )
