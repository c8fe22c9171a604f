"""Materialised positions (``<set>/positions``): same rows, same probes, exactly once.

References: the synthetic activations in memory (numpy) for the stored rows, and a fit from the
full activation array of the same cache (before materialising) for the probes, compared bit for
bit.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from actstore.analysis import fit_probes
from actstore.analysis._data import open_source, select_positions
from actstore.analysis._positions import row_source
from actstore.errors import (
    IncompleteCacheError,
    InvalidArgumentError,
    SampleLossWarning,
    UnknownNameError,
)
from actstore.store import materialize_positions, open_cache, stored_positions, verify_cache
from tests._fixtures.store import make_synthetic, write_synthetic


def _cache(tmp_path: Path, dtype: str, n: int = 40, blocks=None):
    syn = make_synthetic(n_prompts=n, d_model=8, dtype=dtype, block_size=7)
    url = tmp_path / f"{dtype}.zarr"
    write_synthetic(url, syn, blocks=blocks)
    return url, syn


def _materialise(url: Path, positions: str, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleLossWarning)
        return materialize_positions(open_cache(url, mode="r+"), "arith", positions, **kw)


def _fit(url: Path, position: str, kind: str = "ridge"):
    target = "value" if kind == "ridge" else "template"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleLossWarning)
        return fit_probes(
            url, prompt_set="arith", target=target, position=position, cv=3, kind=kind
        ).dataset


def _same(a, b) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def _uses_materialised(url: Path, position: str) -> bool:
    src = open_source(url, "arith")
    prompt, token = select_positions(src.ds, position)
    return row_source(src, "resid_post", position, prompt, token).materialised


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("position", ["last", "before:operands"])
def test_rows_are_the_activations_at_the_position(tmp_path, dtype, position):
    url, syn = _cache(tmp_path, dtype)
    _materialise(url, "last,before:operands")
    assert verify_cache(url).ok  # checksums, and the consolidated metadata rewritten
    group = open_cache(url).group("arith")["positions"]
    j = ["last", "before:operands"].index(position)
    index = group["token_index"][:, j]
    rows = group["resid_post"][:, :, j, :]
    acts = syn.activations["resid_post"]
    have = np.flatnonzero(index >= 0)
    assert rows.dtype == acts.dtype
    # bit for bit against the in-memory activations; prompts without the position hold zeros
    expect = acts[have, :, index[have], :]
    assert expect.view(np.uint8).tobytes() == rows[have].view(np.uint8).tobytes()
    assert not np.any(rows[index < 0].astype(np.float32))
    n_tokens = syn.metadata.n_tokens
    if position == "last":
        np.testing.assert_array_equal(index, n_tokens - 1)
    else:  # 'operands' covers tokens 1-2 of prompts with >= 2 tokens: token 0 precedes it
        np.testing.assert_array_equal(index, np.where(n_tokens >= 2, 0, -1))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("position", ["last", "before:operands"])
@pytest.mark.parametrize("kind", ["ridge", "logistic"])
def test_probes_are_bit_identical_to_the_full_array(tmp_path, dtype, position, kind):
    url, _ = _cache(tmp_path, dtype)
    before = _fit(url, position, kind)
    assert not _uses_materialised(url, position)
    _materialise(url, "before:operands,last")
    assert _uses_materialised(url, position)
    after = _fit(url, position, kind)
    _same(before.drop_attrs(), after.drop_attrs())


def test_other_positions_and_hooks_read_the_full_array(tmp_path):
    url, _ = _cache(tmp_path, "bfloat16")
    _materialise(url, "last")
    assert _uses_materialised(url, "last")
    for position in ("before:operands", "span:answer", "all"):
        assert not _uses_materialised(url, position)
    before = _fit(url, "before:answer")
    _same(before, _fit(url, "before:answer"))


def test_a_killed_run_is_ignored_then_rewritten(tmp_path, monkeypatch):
    url, _ = _cache(tmp_path, "bfloat16")
    reference = _fit(url, "last").drop_attrs()
    calls = {"n": 0}
    real = zarr.Array.__setitem__

    def dies_on_second_shard(self, key, value):
        if self.path.endswith("positions/resid_post"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt  # killed between two shard writes
        return real(self, key, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", dies_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        _materialise(url, "last")
    monkeypatch.undo()
    assert stored_positions(open_cache(url), "arith") is None
    assert not _uses_materialised(url, "last")
    _same(reference, _fit(url, "last").drop_attrs())
    _materialise(url, "last")  # the re-run replaces the torn group
    assert _uses_materialised(url, "last")
    _same(reference, _fit(url, "last").drop_attrs())


def test_materialising_again_replaces_the_positions(tmp_path):
    url, _ = _cache(tmp_path, "float32")
    _materialise(url, "last,before:operands")
    _materialise(url, "before:answer")
    stored = stored_positions(open_cache(url), "arith")
    assert stored is not None and stored["positions"] == ["before:answer"]
    assert not _uses_materialised(url, "last")
    from actstore.store import cache_info

    assert cache_info(url)["prompt_sets"]["arith"]["positions"] == ["before:answer"]


def test_partial_resolution_warns_with_the_count(tmp_path):
    url, syn = _cache(tmp_path, "float32")
    n_lost = int((syn.metadata.n_tokens < 2).sum())
    assert n_lost > 0
    with pytest.warns(SampleLossWarning, match=f"no token in {n_lost} of 40 prompts"):
        materialize_positions(open_cache(url, mode="r+"), "arith", "before:operands")


@pytest.mark.parametrize(
    ("positions", "error", "match"),
    [
        ("before:nope", UnknownNameError, "expected a span of prompt set 'arith'"),
        ("all", InvalidArgumentError, "one token per prompt"),
        ("span:answer", InvalidArgumentError, "one token per prompt"),
        ("middle", InvalidArgumentError, "expected a position spec"),
        ("", InvalidArgumentError, "expected at least one position"),
    ],
)
def test_bad_positions_are_refused(tmp_path, positions, error, match):
    url, _ = _cache(tmp_path, "float32")
    with pytest.raises(error, match=match):
        materialize_positions(open_cache(url, mode="r+"), "arith", positions)
    assert stored_positions(open_cache(url), "arith") is None


def test_incomplete_set_and_read_only_cache_are_refused(tmp_path):
    url, _ = _cache(tmp_path, "float32", blocks=[0, 1])
    with pytest.raises(IncompleteCacheError, match="block\\(s\\) missing"):
        materialize_positions(open_cache(url, mode="r+"), "arith", "last")
    url2, _ = _cache(tmp_path / "b", "float32")
    from actstore.errors import ReadOnlyError

    with pytest.raises(ReadOnlyError):
        materialize_positions(open_cache(url2), "arith", "last")


def test_copies_carry_the_positions_rederived(tmp_path):
    from actstore.store import copy_cache

    url, _ = _cache(tmp_path, "bfloat16")
    _materialise(url, "last,before:operands")
    full, sub = tmp_path / "full.zarr", tmp_path / "sub.zarr"
    copy_cache(url, full)
    copy_cache(url, sub, layers=[4], prompts=list(range(3, 30)))
    _same(_fit(url, "last").drop_attrs(), _fit(full, "last").drop_attrs())
    for where in (full, sub):
        stored = stored_positions(open_cache(where), "arith")
        assert stored is not None and stored["positions"] == ["last", "before:operands"]
        assert _uses_materialised(where, "before:operands")
    # the subset's rows are the source's rows of those prompts and that layer, bit for bit
    src = open_cache(url).group("arith")["positions"]["resid_post"][3:30, 1:2]
    dst = open_cache(sub).group("arith")["positions"]["resid_post"][...]
    assert src.tobytes() == dst.tobytes()


def test_repair_drops_positions_that_a_resume_would_outdate(tmp_path):
    from actstore.store import repair_cache

    url, _ = _cache(tmp_path, "float32")
    _materialise(url, "last")
    shard = next(p for p in (url / "arith" / "resid_post" / "c").rglob("*") if p.is_file())
    shard.write_bytes(shard.read_bytes()[:-7] + b"garbage")  # a damaged block
    repair_cache(url)
    assert stored_positions(open_cache(url), "arith") is None
    assert open_cache(url).missing_blocks("arith") and verify_cache(url).ok
    assert not (url / "arith" / "positions").exists()
    # a damaged positions chunk alone: the group is dropped (derive again), nothing else
    url2, _ = _cache(tmp_path / "b", "float32")
    _materialise(url2, "last")
    chunk = next(p for p in (url2 / "arith" / "positions" / "resid_post").rglob("c/*/*/*/*"))
    chunk.write_bytes(chunk.read_bytes()[:-7] + b"garbage")
    assert not verify_cache(url2).ok
    report = repair_cache(url2)
    assert report.blocks == {} and not report.unrepairable
    assert verify_cache(url2).ok
    assert stored_positions(open_cache(url2), "arith") is None


def test_concurrent_adds_write_the_group_once(tmp_path):
    """Two --shard workers finishing together: the directory lock lets one write, one skip."""
    from concurrent.futures import ThreadPoolExecutor

    url, _ = _cache(tmp_path, "bfloat16")
    reference = _fit(url, "last").drop_attrs()
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda _: _materialise(url, "last", add=True), range(2)))
    assert sorted(d["written"] for d in done) == [False, True]
    assert _uses_materialised(url, "last") and verify_cache(url).ok
    _same(reference, _fit(url, "last").drop_attrs())
    # add=True keeps what is stored and adds the new position
    more = _materialise(url, "before:operands", add=True)
    assert more["written"] and more["positions"] == ["last", "before:operands"]
    assert _uses_materialised(url, "last") and _uses_materialised(url, "before:operands")
