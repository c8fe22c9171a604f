"""``verify_cache`` / ``actstore verify``: a flipped byte in any chunk file is found and named."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from actstore.store import open_cache, verify_cache
from tests._fixtures.store import make_synthetic, write_synthetic


@pytest.fixture
def cache_path(tmp_path):
    syn = make_synthetic(n_prompts=12, block_size=4)
    path = tmp_path / "v.zarr"
    cache, _ = write_synthetic(path, syn)
    cache.write_derived(
        "arith", "probe_pred", np.ones((12, 3, 7), np.float32), dims=("prompt", "layer", "token")
    )
    cache.write_dataset("probes/p", xr.Dataset({"coef": ("d_model", np.arange(16.0))}))
    return path


def _chunk_files(path):
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name != "zarr.json")


def test_clean_cache_verifies(cache_path) -> None:
    report = verify_cache(cache_path)
    assert report.ok, report.problems
    assert report.n_objects == len(_chunk_files(cache_path))


def _flip_each_file(cache_path, positions) -> None:
    files = _chunk_files(cache_path)
    assert len(files) > 20
    for i, f in enumerate(files):
        data = f.read_bytes()
        where = positions[i % len(positions)]
        pos = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[where]
        bad = bytearray(data)
        bad[pos] ^= 0x01
        f.write_bytes(bytes(bad))
        try:
            report = verify_cache(cache_path)
        finally:
            f.write_bytes(data)
        key = f.relative_to(cache_path).as_posix()
        assert [(p.kind, p.key) for p in report.problems] == [("corrupt", key)], (key, where)


def test_flipped_byte_in_every_chunk_file_is_named(cache_path) -> None:
    # every chunk/shard file once, the flipped byte at its start, middle or end in turn
    _flip_each_file(cache_path, ["first", "middle", "last"])


@pytest.mark.slow
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_flipped_byte_anywhere_in_every_chunk_file(cache_path, where) -> None:
    _flip_each_file(cache_path, [where])


def test_missing_shard_of_complete_block_is_named(cache_path) -> None:
    (cache_path / "arith" / "resid_post" / "c" / "1" / "0" / "0" / "0").unlink()
    (cache_path / "arith" / "token_id" / "c" / "0" / "0").unlink()
    report = verify_cache(cache_path)
    assert sorted((p.kind, p.key) for p in report.problems) == [
        ("missing", "arith/resid_post/c/1/0/0/0"),
        ("missing", "arith/token_id/c/0/0"),
    ]


def test_blocks_not_yet_written_are_not_problems(tmp_path) -> None:
    write_synthetic(tmp_path / "i.zarr", make_synthetic(), blocks=[1])
    assert open_cache(tmp_path / "i.zarr").missing_blocks("arith") == [0, 2, 3, 4]
    assert verify_cache(tmp_path / "i.zarr").ok


def test_damaged_array_metadata_is_named(cache_path) -> None:
    meta = cache_path / "arith" / "token_id" / "zarr.json"
    meta.write_text(meta.read_text()[:-20])  # truncated JSON
    report = verify_cache(cache_path)
    assert [(p.kind, p.key) for p in report.problems] == [("metadata", "arith/token_id/zarr.json")]
