"""Batching windows: the plan against a brute-force reference, resume/shard bit-exactness, old sets.

A window is a fixed group of ``W`` consecutive blocks whose prompts are length-sorted and batched
together. The plan must depend only on what is fixed for the cache, so a resume that finds part of
a window written, ``--shard`` workers and an uninterrupted run compute every block with the same
batches (checked on the bytes of the stored shards).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from actstore.errors import CorruptCacheError, FingerprintMismatchError
from actstore.extractors import extract
from actstore.extractors._batching import (
    WINDOW_BATCHES,
    choose_window,
    plan_batches,
    plan_windows,
    stored_window,
)
from actstore.prompts import load_prompts
from tests.extractors._helpers import mixed_prompt_set

SET = "mixed"
#: 64 prompts, 3 per block: 22 blocks; this batch budget gives windows of 4 blocks (checked)
KW = dict(
    layers="0,2,3", dtype="float32", device="cpu", max_batch_tokens=64, block_size=3,
    set_name=SET, progress=False,
)  # fmt: skip


# -- the plan --------------------------------------------------------------------------------------
def _reference_plan(n_tokens, block_size, window, max_batch_tokens):
    """Brute force: per window, prompts sorted by (-length, index), cut greedily at the budget."""
    n = len(n_tokens)
    span = block_size * window
    out = []
    for lo in range(0, n, span):
        order = sorted(range(lo, min(lo + span, n)), key=lambda i: (-int(n_tokens[i]), i))
        cur: list[int] = []
        for i in order:
            if cur and max(int(n_tokens[j]) for j in [*cur, i]) * (len(cur) + 1) > max_batch_tokens:
                out.append(cur)
                cur = []
            cur.append(i)
        if cur:
            out.append(cur)
    return [tuple(b) for b in out]


CASES = [(103, 10, 3, 64), (103, 10, 1, 64), (50, 7, 4, 30), (64, 4, 16, 500), (9, 2, 2, 3)]


@pytest.mark.parametrize(("n", "block_size", "window", "budget"), CASES)
def test_window_plan_equals_brute_force_reference(n, block_size, window, budget):
    rng = np.random.default_rng(n + window)
    n_tokens = rng.integers(1, 40, size=n)
    n_blocks = -(-n // block_size)
    batches = plan_windows(n_tokens, range(n_blocks), budget, block_size=block_size, window=window)
    assert [b.indices for b in batches] == _reference_plan(n_tokens, block_size, window, budget)
    seen = sorted(i for b in batches for i in b.indices)
    assert seen == list(range(n))  # every prompt in exactly one batch
    for b in batches:
        assert b.seq_len == max(n_tokens[list(b.indices)])
        assert b.padded_tokens <= budget or len(b.indices) == 1
        assert b.blocks == tuple(sorted({i // block_size for i in b.indices}))
        assert len({blk // window for blk in b.blocks}) == 1  # inside one window


@pytest.mark.parametrize(("n", "block_size", "window", "budget"), CASES)
def test_plan_of_some_blocks_is_the_full_plan_restricted_to_them(n, block_size, window, budget):
    rng = np.random.default_rng(7 * n + window)
    n_tokens = rng.integers(1, 40, size=n)
    n_blocks = -(-n // block_size)
    full = plan_windows(n_tokens, range(n_blocks), budget, block_size=block_size, window=window)
    for _ in range(5):
        some = {int(b) for b in rng.choice(n_blocks, size=max(1, n_blocks // 3), replace=False)}
        part = plan_windows(n_tokens, some, budget, block_size=block_size, window=window)
        assert part == [b for b in full if some & set(b.blocks)]
        # every row of the asked blocks is computed, in the same batch as in the full plan
        rows = {i for b in part for i in b.indices if i // block_size in some}
        assert rows == {i for i in range(n) if i // block_size in some}


def test_window_of_one_block_is_the_per_block_plan():
    rng = np.random.default_rng(1)
    n_tokens = rng.integers(1, 50, size=103)
    blocks = [(b, b * 10, min(b * 10 + 10, 103)) for b in range(11)]
    per_block = plan_batches(n_tokens, blocks, 64)
    windows = plan_windows(n_tokens, range(11), 64, block_size=10, window=1)
    assert windows == per_block
    assert all(len(b.blocks) == 1 for b in windows)


def test_wider_windows_pad_less_than_blocks():
    rng = np.random.default_rng(2)
    n_tokens = rng.integers(5, 40, size=400)
    padded = [
        sum(b.padded_tokens for b in plan_windows(n_tokens, range(40), 256, block_size=10,
                                                   window=w))
        for w in (1, 4, 40)
    ]  # fmt: skip
    assert padded[0] > padded[1] > padded[2]


@pytest.mark.parametrize("seed", range(6))
def test_choose_window_is_the_smallest_with_enough_tokens_within_the_budget(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    n_tokens = rng.integers(1, 200, size=n)
    block_size = int(rng.integers(1, 300))
    mbt = int(rng.integers(1, 20000))
    nbytes = int(rng.integers(1, 1 << 28))
    budget = int(rng.integers(1, 1 << 31))
    got = choose_window(
        n_tokens, block_size=block_size, max_batch_tokens=mbt, block_nbytes=nbytes, budget=budget
    )
    n_blocks = -(-n // block_size)
    per_block = n_tokens.sum() / n_blocks  # mean real tokens of a block
    enough = [w for w in range(1, n_blocks + 1) if w * per_block >= WINDOW_BATCHES * mbt]
    fits = [w for w in range(1, n_blocks + 1) if 2 * w * nbytes <= budget]
    want = min(enough) if enough else n_blocks
    cap = max(fits) if fits else 1  # a block over half the budget still gets a window of one
    assert got == min(want, cap)


def test_stored_window_of_an_old_set_is_one_and_garbage_is_refused():
    assert stored_window({}, "s") == 1
    assert stored_window({"batch_window": 3}, "s") == 3
    assert stored_window({"batch_window": 3}, "s", asked=3) == 3
    with pytest.raises(FingerprintMismatchError, match=r"expected 1 \(stored\), got 2; drop"):
        stored_window({}, "s", asked=2)
    for bad in (0, -1, 2.0, "2", True, None):
        with pytest.raises(CorruptCacheError, match="batch_window as an integer >= 1"):
            stored_window({"batch_window": bad}, "s")


# -- extraction ------------------------------------------------------------------------------------
def _files(out: Path) -> dict[str, bytes]:
    root = out / SET / "resid_post"
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _window(out: Path) -> int:
    from actstore.store import open_cache

    return open_cache(out).spec(SET).provenance["batch_window"]


@pytest.fixture
def prompts():
    return mixed_prompt_set(n=64, seed=3, name=SET)


@pytest.fixture
def reference(tiny_qwen2_dir, prompts, tmp_path) -> Path:
    ref = tmp_path / "ref.zarr"
    rep = extract(model=tiny_qwen2_dir, prompts=prompts, out=ref, **KW)
    assert rep.complete and rep.plan.batch_window == _window(ref) == 4
    return ref


def _damage_and_repair(out: Path, blocks: list[int]) -> None:
    """Overwrite the shard files of *blocks* with garbage; ``repair`` marks them missing."""
    from actstore.store import open_cache, repair_cache

    for b in blocks:
        for f in (out / SET / "resid_post" / "c" / str(b)).rglob("*"):
            if f.is_file():
                f.write_bytes(b"\0garbage")
    repair_cache(out)
    assert sorted(open_cache(out).missing_blocks(SET)) == blocks


def test_resume_inside_a_window_is_bit_identical(tiny_qwen2_dir, prompts, reference, tmp_path):
    out = tmp_path / "resumed.zarr"
    shutil.copytree(reference, out)
    # window 1 holds blocks 4-7: two of them written, two missing (as a kill mid-window leaves)
    _damage_and_repair(out, [5, 7, 9])
    rep = extract(model=tiny_qwen2_dir, prompts=prompts, out=out, **KW)
    assert rep.blocks_written == 3 and rep.complete
    # the windows' batches ran whole: their other blocks' rows are computed again and dropped
    batches = plan_windows(_lengths(out), [5, 7, 9], 64, block_size=3, window=4)
    assert rep.plan.batches_this_shard == len(batches)
    lengths = _lengths(out)
    assert rep.tokens == sum(int(lengths[list(b.indices)].sum()) for b in batches)
    assert rep.tokens > int(lengths[5 * 3 : 8 * 3].sum())
    assert _files(out) == _files(reference)


def _lengths(out: Path) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_group(str(out), mode="r")[SET]["n_tokens"][:])


def test_shard_workers_get_whole_windows_and_equal_one_run(
    tiny_qwen2_dir, prompts, reference, tmp_path
):
    out = tmp_path / "sharded.zarr"
    reps = [
        extract(model=tiny_qwen2_dir, prompts=prompts, out=out, shard=f"{i}/2", **KW)
        for i in (1, 0)
    ]
    w, n_blocks = 4, 22
    mine = {i: [b for b in range(n_blocks) if (b // w) % 2 == i] for i in (0, 1)}
    assert [r.blocks_written for r in reps] == [len(mine[1]), len(mine[0])]
    assert reps[1].complete
    # no worker computed another's rows: together they ran each prompt once
    assert sum(r.tokens for r in reps) == int(_lengths(out).sum())
    assert _files(out) == _files(reference)


def test_explicit_window_is_recorded_and_a_different_one_refused_on_resume(
    tiny_qwen2_dir, prompts, tmp_path
):
    out = tmp_path / "c.zarr"
    rep = extract(model=tiny_qwen2_dir, prompts=prompts, out=out, batch_window=3, **KW)
    assert rep.plan.batch_window == _window(out) == 3
    with pytest.raises(FingerprintMismatchError, match=r"window differs.*3 \(stored\), got 2"):
        extract(model=tiny_qwen2_dir, prompts=prompts, out=out, batch_window=2, **KW)
    again = extract(model=tiny_qwen2_dir, prompts=prompts, out=out, **KW)  # the stored one
    assert again.status == "already-complete"


def _strip_window(out: Path) -> None:
    """Make *out* a set written before windows existed: no ``batch_window`` in its provenance."""
    from actstore.store import open_cache

    doc = out / SET / "zarr.json"
    meta = json.loads(doc.read_text())
    assert meta["attributes"]["actstore"]["spec"]["provenance"].pop("batch_window") == 1
    doc.write_text(json.dumps(meta))
    open_cache(out, mode="r+").consolidate()


def test_old_set_without_a_stored_window_resumes_block_by_block(
    tiny_qwen2_dir, prompts, reference, tmp_path
):
    old_ref = tmp_path / "old_ref.zarr"  # what the per-block plan (before windows) writes
    extract(model=tiny_qwen2_dir, prompts=prompts, out=old_ref, batch_window=1, **KW)
    assert _files(old_ref) != _files(reference)  # the window changes the bytes: test can fail
    out = tmp_path / "old.zarr"
    shutil.copytree(old_ref, out)
    _strip_window(out)
    _damage_and_repair(out, [1, 2, 6])
    rep = extract(model=tiny_qwen2_dir, prompts=prompts, out=out, **KW)
    assert rep.plan.batch_window == 1 and rep.blocks_written == 3
    assert _files(out) == _files(old_ref)


def test_an_explicit_window_is_capped_at_the_blocks_and_the_same_command_resumes(
    tiny_qwen2_dir, tmp_path
) -> None:
    """A huge --batch-window is stored as the set's block count (no 20-digit integer in
    zarr.json, no unbounded writer queue), and re-running the same command is a resume."""
    from actstore.store import open_cache

    prompts = load_prompts("multiplication", n=24, seed=0)
    kw = dict(
        model=tiny_qwen2_dir, prompts=prompts, layers="0,1", block_size=4, progress="none",
        batch_window=10**20,
    )  # fmt: skip
    out = tmp_path / "c.zarr"
    extract(out=out, **kw)
    cache = open_cache(out)
    name = cache.prompt_sets[0]
    n_blocks = cache.set_info(name)["layout"]["n_blocks"]
    assert cache.set_info(name)["spec"]["provenance"]["batch_window"] == n_blocks == 6
    rep = extract(out=out, **kw)
    assert rep.complete


def _damage_one_block(out: Path, name: str) -> None:
    from actstore.store import repair_cache

    victim = next(p for p in sorted((out / name / "resid_post" / "c").rglob("*")) if p.is_file())
    victim.write_bytes(victim.read_bytes()[:10])  # a torn shard: repair unrecords its block
    assert repair_cache(out).blocks[name]


def test_resuming_with_another_batch_budget_warns(tiny_qwen2_dir, tmp_path) -> None:
    """Lowering --max-batch-tokens after an out-of-memory error is allowed, but the blocks it
    writes are batched differently: the run says so; with the stored value it says nothing."""
    from actstore.store import open_cache

    prompts = load_prompts("multiplication", n=24, seed=0)
    kw = dict(model=tiny_qwen2_dir, prompts=prompts, layers="0,1", block_size=4, progress="none")
    out = tmp_path / "c.zarr"
    extract(out=out, max_batch_tokens=64, **kw)
    name = open_cache(out).prompt_sets[0]
    _damage_one_block(out, name)
    with pytest.warns(UserWarning, match="created with --max-batch-tokens 64, this run uses 32"):
        assert extract(out=out, max_batch_tokens=32, **kw).blocks_written == 1
    _damage_one_block(out, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert extract(out=out, max_batch_tokens=64, **kw).blocks_written == 1


def test_dry_run_of_a_resume_plans_the_stored_window_and_the_missing_blocks(
    tiny_qwen2_dir, tmp_path
) -> None:
    """The dry run shows what the real run will do: the stored window (not the automatic one),
    the blocks still missing, and it refuses a --batch-window the real run would refuse."""
    from actstore.store import open_cache

    prompts = load_prompts("multiplication", n=24, seed=0)
    kw = dict(model=tiny_qwen2_dir, prompts=prompts, layers="0,1", block_size=4, progress="none")
    out = tmp_path / "c.zarr"
    extract(out=out, batch_window=2, **kw)
    name = open_cache(out).prompt_sets[0]
    _damage_one_block(out, name)
    missing = open_cache(out).missing_blocks(name)
    dry = extract(out=out, dry_run=True, **kw)
    assert f"{len(missing)} of 6 blocks missing" in dry.message
    assert "stored batch window 2" in dry.message
    assert dry.plan.batch_window == 2
    real = extract(out=out, **kw)
    assert real.blocks_written == len(missing)
    assert dry.plan.batches_this_shard == real.plan.batches_this_shard
    assert dry.plan.blocks_this_shard == len(missing)
    with pytest.raises(FingerprintMismatchError, match="batch_window differs"):
        extract(out=out, dry_run=True, batch_window=3, **kw)


def test_a_worker_without_a_window_says_so(tiny_qwen2_dir, tmp_path) -> None:
    prompts = load_prompts("multiplication", n=24, seed=0)
    kw = dict(model=tiny_qwen2_dir, prompts=prompts, layers="0,1", block_size=4, progress="none")
    out = tmp_path / "c.zarr"
    extract(out=out, batch_window=3, shard="0/4", **kw)  # 6 blocks: windows 0 and 1
    rep = extract(out=out, batch_window=3, shard="3/4", **kw)
    assert rep.blocks_written == 0
    assert "no block of" in rep.message and "use at most 2 workers" in rep.message
