"""Stored-layer requests to the store's Python API (``Cache.activations``, ``copy_cache``,
``export_cache``) take an int, a list or a numpy integer array, and refuse a string in one line
instead of reading it character by character (``"1,3"`` was ``'1'``, ``','``, ``'3'``) or
failing with numpy's "truth value of an array is ambiguous"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from actstore.errors import InvalidArgumentError
from actstore.store import copy_cache, export_cache, open_cache


@pytest.fixture
def cache(synthetic_cache) -> str:
    return str(synthetic_cache[0])


def _layers(cache: str) -> list[int]:
    return list(open_cache(cache).spec("arith").layers)


@pytest.mark.parametrize("kind", ["array", "numpy ints", "int"])
def test_numpy_and_int_layer_requests(kind, cache, tmp_path: Path) -> None:
    stored = _layers(cache)
    want = stored[1:] if kind != "int" else stored[:1]
    request = {"array": np.array(want), "numpy ints": [np.int64(x) for x in want],
               "int": np.int32(want[0]) if kind == "int" else None}[kind]  # fmt: skip
    c = open_cache(cache)
    got = c.activations("arith", layers=request)
    assert got["layer"].values.tolist() == want
    # independent reference: the stored array read with zarr, layers picked by their index
    raw = zarr.open_group(cache, mode="r")["arith/resid_post"][...]
    idx = [stored.index(x) for x in want]
    np.testing.assert_array_equal(
        c.activations("arith", layers=request, decode_bfloat16=False).values.view(np.uint16),
        raw[:, idx].view(np.uint16),
    )
    copy_cache(cache, tmp_path / "copy.zarr", layers=request)
    assert list(open_cache(tmp_path / "copy.zarr").spec("arith").layers) == want
    export_cache(cache, tmp_path / "npy", format="npy", layers=request)
    files = sorted(p.name for p in (tmp_path / "npy" / "arith").glob("resid_post.*.npy"))
    assert files == [f"resid_post.layer{x}.npy" for x in sorted(want)]


@pytest.mark.parametrize("bad", ["1,4", [1.5], [True], np.array([1.0, 4.0])])
def test_a_string_or_non_integer_layer_request_is_one_line(bad, cache, tmp_path: Path) -> None:
    message = "expected layers as a list of stored layer indices, got "
    for call in (
        lambda: open_cache(cache).activations("arith", layers=bad),
        lambda: copy_cache(cache, tmp_path / "c.zarr", layers=bad),
        lambda: export_cache(cache, tmp_path / "e", format="npy", layers=bad),
    ):
        with pytest.raises(InvalidArgumentError) as info:
            call()
        assert str(info.value).startswith(message) and "pass e.g. [7, 15]" in str(info.value)
    assert not (tmp_path / "c.zarr").exists() and not (tmp_path / "e").exists()
