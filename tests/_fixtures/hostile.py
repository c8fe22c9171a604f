"""Fixtures of the hostile-input tests (tests/reliability/test_hostile*.py): a clean small cache
built once per module and a fresh copy of it per test, to plant hostile metadata into."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def clean_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small complete cache (bfloat16 set ``arith``, plus a saved probe group) per test session."""
    import numpy as np
    import xarray as xr

    from tests._fixtures.store import make_synthetic, write_synthetic

    path = tmp_path_factory.mktemp("hostile") / "clean.zarr"
    cache, _ = write_synthetic(path, make_synthetic(n_prompts=9, block_size=3))
    probe = xr.Dataset({"coef": (("layer", "d_model"), np.arange(48.0).reshape(3, 16))})
    cache.write_dataset("probes/value", probe)
    return path


@pytest.fixture
def cache_copy(clean_cache: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "cache.zarr"
    shutil.copytree(clean_cache, dst)
    return dst
