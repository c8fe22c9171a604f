"""The bfloat16 Zarr v3 data type: bit-exact, 2 bytes on disk, shards, xarray."""

from __future__ import annotations

import json
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
import xarray as xr
import zarr

import actstore  # registers bfloat16
from actstore.store import BFLOAT16


def _all_bit_patterns() -> np.ndarray:
    # every one of the 65536 bfloat16 bit patterns: NaNs, infinities, subnormals, -0.0
    return np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(BFLOAT16)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_every_bit_pattern_round_trips_through_sharded_zarr(tmp_path) -> None:
    values = _all_bit_patterns().reshape(16, 4, 32, 32)
    arr = zarr.create_array(
        tmp_path / "a.zarr",
        shape=values.shape,
        dtype=BFLOAT16,
        chunks=(4, 1, 32, 32),
        shards=(8, 4, 32, 32),
        compressors=None,
    )
    arr[:8] = values[:8]
    arr[8:] = values[8:]
    back = zarr.open_array(tmp_path / "a.zarr", mode="r")[:]
    assert back.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(back.view(np.uint16), values.view(np.uint16))
    meta = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    assert meta["data_type"] == "bfloat16"
    # uncompressed: 2 bytes per value in the shard files (plus the shard index)
    shard_bytes = sum(
        p.stat().st_size for p in (tmp_path / "a.zarr" / "c").rglob("*") if p.is_file()
    )
    assert 2 * values.size <= shard_bytes < 2 * values.size + 4096


def test_bfloat16_differs_from_float16_bits() -> None:
    # guards against a dtype mix-up: the same bits mean different numbers in the two formats
    x = np.array([1.0], dtype=BFLOAT16)
    assert x.view(np.uint16)[0] == 0x3F80
    assert np.array([1.0], dtype=np.float16).view(np.uint16)[0] == 0x3C00


def test_fill_value_serialises_as_json_float(tmp_path) -> None:
    zarr.create_array(tmp_path / "f.zarr", shape=(3,), dtype=BFLOAT16, chunks=(3,), fill_value=1.5)
    meta = json.loads((tmp_path / "f.zarr" / "zarr.json").read_text())
    assert meta["fill_value"] == 1.5
    back = zarr.open_array(tmp_path / "f.zarr", mode="r")[:]
    np.testing.assert_array_equal(back.astype(np.float32), [1.5, 1.5, 1.5])


def test_plain_xarray_reads_bfloat16_after_import(tmp_path) -> None:
    values = np.random.default_rng(1).standard_normal((6, 2, 3, 8)).astype(BFLOAT16)
    arr = zarr.create_array(
        tmp_path / "x.zarr",
        name="v",
        shape=values.shape,
        dtype=BFLOAT16,
        chunks=(3, 1, 3, 8),
        dimension_names=("prompt", "layer", "token", "d_model"),
    )
    arr[:] = values
    code = (
        "import actstore, numpy as np, xarray as xr\n"
        f"ds = xr.open_zarr({str(tmp_path / 'x.zarr')!r}, consolidated=False)\n"
        "v = ds['v'].values\n"
        "print(v.dtype, v.view(np.uint16).sum(dtype=np.int64))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["bfloat16", str(values.view(np.uint16).sum(dtype=np.int64))]
    # and in this process, through dask, casting lazily
    ds = xr.open_zarr(tmp_path / "x.zarr", consolidated=False)
    np.testing.assert_array_equal(ds["v"].astype("float32").values, values.astype(np.float32))
    assert actstore.open is not None
