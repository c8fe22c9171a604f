"""The how-to "Write a cache from another extractor" (docs/howto/write-api.md) runs as written,
into a directory and into ``memory://``, resumes, and stores what it was given (checked with zarr
and xarray directly, against the numpy arrays of the example)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

DOC = Path(__file__).resolve().parents[2] / "docs" / "howto" / "write-api.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks, f"no python example in {DOC}"
    return blocks[0]


@pytest.mark.parametrize("url", ["cache.zarr", "memory://"])
def test_the_write_api_howto_runs_as_written(url, tmp_path, monkeypatch):
    from actstore.store import create_cache

    monkeypatch.chdir(tmp_path)
    if url == "memory://":
        url = f"memory://write-api-doc/{tmp_path.name}/cache.zarr"
    code = _example().replace('"cache.zarr"', repr(url))
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)
    acts, n_tokens = ns["acts"], ns["n_tokens"]
    assert ns["cache"].is_complete() and ns["cache"].missing_blocks("physics") == []

    # what was stored, read with zarr and xarray alone: the real tokens equal the example's arrays
    real = np.arange(acts.shape[2])[None, :] < n_tokens[:, None]  # (prompt, token)
    stored = zarr.open_group(url, mode="r")["physics/resid_post"][...]
    assert stored.shape == acts.shape
    np.testing.assert_array_equal(
        stored.transpose(0, 2, 1, 3)[real], acts.transpose(0, 2, 1, 3)[real]
    )
    ds = xr.open_zarr(url, group="physics", consolidated=False)
    assert ds["resid_post"].dims == ("prompt", "layer", "token", "d_model")
    assert ds["layer"].values.tolist() == [0, 2]
    np.testing.assert_array_equal(ds["value"].values, np.arange(10.0))
    np.testing.assert_array_equal(ds["n_tokens"].values, n_tokens)
    assert ds["pred_myprobe"].dims == ("prompt", "layer", "token")

    # run again: the writer resumes, finds nothing left to write, and the data is unchanged
    assert create_cache(url).prompt_set_writer("physics").missing_blocks() == []
    ns2: dict = {}
    exec(compile(code, str(DOC), "exec"), ns2)
    again = zarr.open_group(url, mode="r")["physics/resid_post"][...]
    np.testing.assert_array_equal(again, stored)
