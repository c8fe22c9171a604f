"""Saved probes: inside the cache, .npz + .json, standalone .zarr; no pickle; refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from actstore.analysis import fit_probes, load_probes, save_probes
from actstore.analysis._data import open_source
from actstore.analysis._persist import check_compatible
from actstore.errors import (
    InvalidArgumentError,
    ProbeMismatchError,
    StoreNotFoundError,
    UnknownNameError,
)
from tests._fixtures.analysis import planted_set


@pytest.fixture(scope="module")
def probes(planted_pair):
    train, _ = planted_pair
    return fit_probes(train, prompt_set="arithmetic", target="value", alphas=[0.1, 1.0])


def _same(a, b) -> None:
    xr.testing.assert_identical(a.dataset, b.dataset)
    assert a.lineage == b.lineage


def test_roundtrip_inside_cache(planted_cache, probes) -> None:
    where = save_probes(probes, planted_cache, name="value_last")
    assert where.endswith("#probes/value_last")
    _same(load_probes(planted_cache, name="value_last"), probes)
    with pytest.raises(UnknownNameError):
        load_probes(planted_cache, name="missing")


def test_roundtrip_npz_without_pickle(tmp_path, probes) -> None:
    path = tmp_path / "p.npz"
    save_probes(probes, path)
    with np.load(path, allow_pickle=False) as npz:  # every array loads without pickle
        assert all(npz[k].dtype != object for k in npz.files)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["lineage"]["target"] == "value"
    _same(load_probes(path), probes)
    path.with_suffix(".json").unlink()
    with pytest.raises(StoreNotFoundError, match="json"):
        load_probes(path)
    with pytest.raises(StoreNotFoundError):
        load_probes(tmp_path / "none.npz")


def test_roundtrip_standalone_zarr(tmp_path, probes) -> None:
    save_probes(probes, tmp_path / "p.zarr")
    _same(load_probes(tmp_path / "p.zarr"), probes)
    with pytest.raises(InvalidArgumentError, match=r"npz or \.zarr"):
        save_probes(probes, tmp_path / "p.bin")


def test_check_compatible_refuses_other_d_model_and_model(probes) -> None:
    small = open_source(planted_set(n_prompts=10, kind="test", d_model=8), "physics")
    with pytest.raises(ProbeMismatchError, match="d_model 8"):
        check_compatible(probes, small, hook="resid_post")
    other = open_source(planted_set(n_prompts=10, kind="test", model="m2"), "physics")
    with pytest.raises(ProbeMismatchError, match="m2"):
        check_compatible(probes, other, hook="resid_post")
    check_compatible(probes, other, hook="resid_post", allow_model_mismatch=True)
