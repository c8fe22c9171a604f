"""Caches on fsspec URLs: ``memory://`` and an S3-compatible server (moto) on 127.0.0.1."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import actstore
from actstore.errors import StoreNotFoundError
from actstore.store import copy_cache, open_cache, verify_cache
from tests._fixtures.store import make_synthetic, write_synthetic


def test_memory_round_trip() -> None:
    url = f"memory://actstore-test-{uuid.uuid4().hex}/c.zarr"
    syn = make_synthetic(dtype="float16")
    write_synthetic(url, syn)
    ds = actstore.open(url, group="arith")
    np.testing.assert_array_equal(ds["resid_post"].values, syn.activations["resid_post"])
    assert verify_cache(url).ok
    with pytest.raises(StoreNotFoundError):
        open_cache(f"memory://actstore-test-{uuid.uuid4().hex}/none.zarr")


@pytest.fixture(scope="module")
def s3_options(s3_server):
    """Storage options of the shared loopback S3 server (bucket ``caches``)."""
    return s3_server.storage_options


def test_s3_round_trip_and_copy(s3_options, tmp_path) -> None:
    syn = make_synthetic()
    local = tmp_path / "local.zarr"
    write_synthetic(local, syn)
    url = "s3://caches/shared/c.zarr"
    copy_cache(local, url, dst_storage_options=s3_options)
    ds = actstore.open(url, group="arith", storage_options=s3_options, decode_bfloat16=False)
    np.testing.assert_array_equal(
        ds["resid_post"].values.view(np.uint16), syn.activations["resid_post"].view(np.uint16)
    )
    assert [str(t) for t in ds["text"].values] == list(syn.metadata.text)
    cache = open_cache(url, storage_options=s3_options)
    assert cache.is_complete()
    assert verify_cache(url, storage_options=s3_options).ok
    # and back down, as a collaborator would
    copy_cache(url, tmp_path / "back.zarr", storage_options=s3_options, layers=[4])
    back = actstore.open(tmp_path / "back.zarr", group="arith", decode_bfloat16=False)
    np.testing.assert_array_equal(
        back["resid_post"].values.view(np.uint16),
        syn.activations["resid_post"][:, [1]].view(np.uint16),
    )
    with pytest.raises(StoreNotFoundError):
        open_cache("s3://caches/none.zarr", storage_options=s3_options)
