"""Store behaviour that hand-made mutants showed untested (see tests/mutation/)."""

from __future__ import annotations

import numpy as np
import pytest

import actstore
from actstore.errors import IncompleteCacheWarning, InvalidArgumentError
from actstore.store import open_cache
from tests._fixtures.store import make_synthetic, write_synthetic


def test_a_killed_marker_write_is_not_a_marker_and_is_cleaned_on_rewrite(tmp_path) -> None:
    """zarr writes a marker via ``c/<b>.<uuid>.partial``; a process killed there leaves that file.
    It must not count as the marker, and rewriting the block removes it."""
    syn = make_synthetic()
    path = tmp_path / "c.zarr"
    _, writer = write_synthetic(path, syn, blocks=[0, 1])
    marker_dir = path / "arith" / "_blocks_done" / "c"
    leftover = marker_dir / "2.0123456789abcdef0123456789abcdef.partial"
    leftover.write_bytes((marker_dir / "0").read_bytes())
    assert open_cache(path).missing_blocks("arith") == [2, 3, 4]
    s, e = writer.block_range(2)
    writer.write_block(2, {"resid_post": syn.activations["resid_post"][s:e]})
    assert not leftover.exists()
    assert open_cache(path).missing_blocks("arith") == [3, 4]


def test_open_chunks_one_layer_and_hides_the_marker_array(synthetic_cache) -> None:
    path, syn = synthetic_cache
    ds = actstore.open(path, group="arith", decode_bfloat16=False)
    cache = open_cache(path)
    read = cache.set_info("arith")["layout"]["read_prompts"]
    chunks = dict(zip(ds["resid_post"].dims, ds["resid_post"].chunks, strict=True))
    assert set(chunks["layer"]) == {1}
    assert chunks["prompt"][0] == min(read, syn.spec.n_prompts)
    assert not any(name.startswith("_") for name in ds.variables)
    assert "block" not in ds.dims


@pytest.mark.parametrize(
    ("name", "data", "dims", "match"),
    [
        ("resid_post", np.zeros((23, 3, 7), np.float32), ("prompt", "layer", "token"), "name"),
        ("words", np.full(23, "a"), ("prompt",), "dtype"),
        ("short", np.zeros((22, 3, 7), np.float32), ("prompt", "layer", "token"), "shape"),
        ("flat", np.zeros(23 * 3 * 7, np.float32), ("prompt", "layer", "token"), "shape"),
    ],
)
def test_write_derived_refuses_bad_variables(synthetic_cache, name, data, dims, match) -> None:
    path, syn = synthetic_cache
    cache = open_cache(path, mode="r+")
    with pytest.raises(InvalidArgumentError, match=match):
        cache.write_derived("arith", name, data, dims=dims)
    ds = actstore.open(path, group="arith", decode_bfloat16=False)
    assert name not in ds or name == "resid_post"
    np.testing.assert_array_equal(
        ds["resid_post"].values.view(np.uint16),
        syn.activations["resid_post"].view(np.uint16),
    )


def test_a_torn_shard_of_an_unrecorded_block_is_replaced(tmp_path) -> None:
    """A write killed on a store without atomic puts can leave a torn shard behind an unrecorded
    block; rewriting that block replaces it whole, and the data reads back exactly."""
    syn = make_synthetic()
    path = tmp_path / "c.zarr"
    _, writer = write_synthetic(path, syn, blocks=[0, 1])
    good = (path / "arith" / "resid_post" / "c" / "0" / "0" / "0" / "0").read_bytes()
    torn = path / "arith" / "resid_post" / "c" / "2" / "0" / "0" / "0"
    torn.parent.mkdir(parents=True, exist_ok=True)
    torn.write_bytes(good[: len(good) // 2])
    s, e = writer.block_range(2)
    writer.write_block(2, {"resid_post": syn.activations["resid_post"][s:e]})
    with pytest.warns(IncompleteCacheWarning, match=r"2 of 5 blocks missing \(3, 4"):
        ds = actstore.open(path, group="arith", decode_bfloat16=False)
    np.testing.assert_array_equal(
        ds["resid_post"].values[s:e].view(np.uint16),
        syn.activations["resid_post"][s:e].view(np.uint16),
    )


def test_copy_prompt_indices_at_the_bounds(tmp_path) -> None:
    """Index n (one past the last prompt) is refused before anything is written; n - 1 copies the
    last prompt; -1 is refused or means the last prompt, never something else."""
    from actstore.errors import UnknownNameError
    from actstore.store import copy_cache

    syn = make_synthetic()  # 23 prompts
    src = tmp_path / "s.zarr"
    write_synthetic(src, syn)
    with pytest.raises(UnknownNameError, match="prompt indices"):
        copy_cache(src, tmp_path / "x.zarr", prompts=[0, 23])
    assert not (tmp_path / "x.zarr").exists()
    copy_cache(src, tmp_path / "last.zarr", prompts=[22])
    want = actstore.open(tmp_path / "last.zarr", group="arith", decode_bfloat16=False)[
        "text"
    ].values.tolist()
    assert want == [syn.metadata.text[22]]
    try:
        copy_cache(src, tmp_path / "neg.zarr", prompts=[-1])
    except UnknownNameError:
        assert not (tmp_path / "neg.zarr").exists()
    else:
        ds = actstore.open(tmp_path / "neg.zarr", group="arith", decode_bfloat16=False)
        assert ds["text"].values.tolist() == want
        np.testing.assert_array_equal(
            ds["resid_post"].values.view(np.uint16),
            syn.activations["resid_post"][[22]].view(np.uint16),
        )


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_open_casts_the_activations_to_the_dtype_asked_for(synthetic_cache, dtype) -> None:
    """``open(dtype=...)`` casts the hook variables (here from bfloat16 to a dtype that is not
    bfloat16's decoded float32); the values are numpy's cast of the stored ones."""
    path, syn = synthetic_cache
    ds = actstore.open(path, group="arith", dtype=dtype)
    assert ds["resid_post"].dtype == np.dtype(dtype)
    want = syn.activations["resid_post"].astype(np.float32).astype(dtype)
    np.testing.assert_array_equal(ds["resid_post"].values, want)
