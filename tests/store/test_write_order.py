"""Completion is recorded after the data: the order of store writes, and a subset copy of an
incomplete cache.

The store writes every object through ``zarr.storage.LocalStore.set``, except the shard files,
which actstore writes itself (``actstore.store.core._chunkcodec.write_file``); wrappers of both
record the keys in the order they are stored (and can fail one), so the tests see the order
itself, not only the end state.
"""

from __future__ import annotations

import numpy as np
import pytest
from zarr.storage import LocalStore

import actstore
from actstore.errors import IncompleteCacheWarning
from actstore.store import copy_cache, open_cache
from tests._fixtures.store import make_synthetic, write_synthetic

MARKER = "_blocks_done/c/"


def _bits(a) -> np.ndarray:
    a = np.asarray(a)
    return a.view({2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


class _Crash(Exception):
    """Stands in for the process dying at one store write."""


@pytest.fixture
def recorded(monkeypatch):
    """Record every key ``LocalStore.set`` stores, in order; ``fail`` makes matching keys raise."""
    log: list[str] = []
    fail: list = []
    original = LocalStore.set

    async def recording_set(self, key, value, *args, **kwargs):
        if any(f(key) for f in fail):
            raise _Crash(key)
        out = await original(self, key, value, *args, **kwargs)
        log.append(key)
        return out

    from actstore.store.core import _chunkcodec

    original_file = _chunkcodec.write_file

    def recording_file(root, key, pieces):  # a local shard file (not through LocalStore.set)
        if any(f(key) for f in fail):
            raise _Crash(key)
        out = original_file(root, key, pieces)
        log.append(key)
        return out

    monkeypatch.setattr(LocalStore, "set", recording_set)
    monkeypatch.setattr(_chunkcodec, "write_file", recording_file)
    return log, fail


def _is_marker(key: str, b: int) -> bool:
    return key == f"arith/{MARKER}{b}"


def _is_shard(key: str, hook: str, b: int) -> bool:
    return key.startswith(f"arith/{hook}/c/{b}/")


@pytest.mark.parametrize("hooks", [("resid_post",), ("resid_post", "resid_mid")])
def test_every_shard_is_stored_before_its_marker(tmp_path, recorded, hooks) -> None:
    log, _ = recorded
    syn = make_synthetic(hooks=hooks, seed=2)
    _, writer = write_synthetic(tmp_path / "c.zarr", syn, blocks=[])
    log.clear()
    for b in (3, 0, 4):
        s, e = writer.block_range(b)
        writer.write_block(b, {h: a[s:e] for h, a in syn.activations.items()})
    for b in (3, 0, 4):
        marker = [i for i, k in enumerate(log) if _is_marker(k, b)]
        assert len(marker) == 1, f"block {b}: marker stored {len(marker)} times: {log}"
        for hook in hooks:
            shard = [i for i, k in enumerate(log) if _is_shard(k, hook, b)]
            assert shard, f"block {b}: no {hook} shard stored: {log}"
            assert max(shard) < marker[0], f"block {b}: marker before the {hook} shard: {log}"
    # nothing but the written blocks' shards and markers was stored
    others = [k for k in log if not any(_is_marker(k, b) for b in (3, 0, 4))]
    assert all(any(_is_shard(k, h, b) for h in hooks for b in (3, 0, 4)) for k in others), log
    assert open_cache(tmp_path / "c.zarr").missing_blocks("arith") == [1, 2]


@pytest.mark.parametrize("crash_at", ["marker", "last_shard"])
def test_crash_between_shard_and_marker_leaves_the_block_missing(
    tmp_path, recorded, crash_at
) -> None:
    """Killed after the shards but before the marker (or at the last shard): not recorded;
    a resumed writer rewrites it and then the data reads back exactly."""
    _, fail = recorded
    hooks = ("resid_post", "resid_mid")
    syn = make_synthetic(hooks=hooks, seed=4)
    path = tmp_path / "c.zarr"
    _, writer = write_synthetic(path, syn, blocks=[0])
    if crash_at == "marker":
        fail.append(lambda k: _is_marker(k, 2))
    else:
        fail.append(lambda k: _is_shard(k, "resid_mid", 2))
    s, e = writer.block_range(2)
    with pytest.raises(_Crash):
        writer.write_block(2, {h: a[s:e] for h, a in syn.activations.items()})
    fail.clear()
    assert open_cache(path).missing_blocks("arith") == [1, 2, 3, 4]
    resumed = open_cache(path, mode="r+").prompt_set_writer("arith")
    assert resumed.missing_blocks() == [1, 2, 3, 4]
    for b in resumed.missing_blocks():
        s, e = resumed.block_range(b)
        resumed.write_block(b, {h: a[s:e] for h, a in syn.activations.items()})
    ds = actstore.open(path, group="arith", decode_bfloat16=False)
    for h in hooks:
        np.testing.assert_array_equal(_bits(ds[h].values), _bits(syn.activations[h]))


@pytest.mark.parametrize("copy_block", [None, 4], ids=["one-shard", "shards-of-4"])
@pytest.mark.parametrize(
    "prompts", [slice(2, 21), [22, 0, 1, 2, 11, 12, 5, 6, 7, 17], slice(None, None, 2)]
)
def test_subset_copy_of_incomplete_cache_records_only_copied_prompts(
    tmp_path, monkeypatch, prompts, copy_block
) -> None:
    """``prompts=`` from a cache with unwritten blocks: a copy block is recorded only when all its
    prompts came from written source blocks, and every recorded block holds the source's data.

    A subset copy picks its own shard size (one shard for a cache this small); a smaller target
    size makes the copy several shards, some complete and some not.
    """
    if copy_block is not None:  # 672 bytes per prompt: 3 layers x 7 tokens x 16 x bfloat16
        monkeypatch.setattr("actstore.store.format._layout.TARGET_SHARD_BYTES", 672 * copy_block)
    syn = make_synthetic(seed=7)  # 23 prompts, blocks of 5: block 4 holds prompts 20-22
    src = tmp_path / "s.zarr"
    write_synthetic(src, syn, blocks=[0, 1, 3])  # prompts 10-14 and 20-22 never written
    src_missing = {2, 4}
    copy_cache(src, tmp_path / "d.zarr", prompts=prompts)
    dst = open_cache(tmp_path / "d.zarr")
    sel = np.arange(23)[prompts] if isinstance(prompts, slice) else np.asarray(prompts)
    size = dst.spec("arith").block_size
    assert size == (copy_block or len(sel))
    n_blocks = -(-len(sel) // size)
    want_missing = [
        b
        for b in range(n_blocks)
        if any(int(p) // 5 in src_missing for p in sel[b * size : (b + 1) * size])
    ]
    assert want_missing, "the selection should touch an unwritten block"
    if copy_block is not None:
        assert len(want_missing) < n_blocks, "some copy block should be complete"
    assert dst.missing_blocks("arith") == want_missing
    assert not dst.is_complete()
    with pytest.warns(IncompleteCacheWarning):
        ds = actstore.open(tmp_path / "d.zarr", group="arith", decode_bfloat16=False)
    got = ds["resid_post"].values
    for b in range(n_blocks):
        if b in want_missing:
            continue
        rows = slice(b * size, (b + 1) * size)
        np.testing.assert_array_equal(
            _bits(got[rows]), _bits(syn.activations["resid_post"][sel[rows]])
        )
    np.testing.assert_array_equal(ds["value"].values, syn.metadata.labels["value"][sel])
