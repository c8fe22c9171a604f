"""``copy_cache`` / ``actstore copy``: full, subset and .zip copies compared with the source."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import xarray as xr

import actstore
from actstore.errors import InvalidArgumentError, ReadOnlyError, UnknownNameError
from actstore.store import copy_cache, open_cache
from tests._fixtures.store import make_synthetic, write_synthetic


def _bits(a) -> np.ndarray:
    return np.asarray(a).view(np.uint16)


@pytest.fixture
def source(tmp_path):
    a = make_synthetic(seed=5, hooks=("resid_post", "resid_mid"))
    b = make_synthetic(seed=6, n_prompts=11, layers=(0, 2), dtype="float16", block_size=4)
    path = tmp_path / "src.zarr"
    cache, _ = write_synthetic(path, a, name="arithmetic")
    write_synthetic(path, b, name="physics")
    pred = np.random.default_rng(0).standard_normal((23, 3, 7)).astype(np.float32)
    cache.write_derived(
        "arithmetic", "probe_pred", pred, dims=("prompt", "layer", "token"), attrs={"probe": "v"}
    )
    probe = xr.Dataset({"coef": (("layer", "d_model"), np.arange(48.0).reshape(3, 16))})
    cache.write_dataset("probes/value", probe)
    return path, a, b, pred, probe


def _assert_same_set(got: xr.Dataset, want: xr.Dataset) -> None:
    for name in want.variables:
        g, w = got[name].values, want[name].values
        if g.dtype.kind in "fV" and g.dtype.itemsize == 2:
            np.testing.assert_array_equal(_bits(g), _bits(w))
        else:
            np.testing.assert_array_equal(g, w)


def test_full_copy_is_identical(source, tmp_path) -> None:
    path, *_ = source
    copy_cache(path, tmp_path / "dst.zarr")
    src = actstore.open(path, decode_bfloat16=False)
    dst = actstore.open(tmp_path / "dst.zarr", decode_bfloat16=False)
    for name in ("arithmetic", "physics", "probes/value"):
        _assert_same_set(dst[name].dataset, src[name].dataset)
    assert open_cache(tmp_path / "dst.zarr").spec("physics") == open_cache(path).spec("physics")


def test_subset_copy_layers_prompts_sets(source, tmp_path) -> None:
    path, a, _b, pred, _ = source
    report = copy_cache(
        path, tmp_path / "sub.zarr", layers=[6, 1], prompt_sets=["arithmetic"], prompts=slice(3, 17)
    )
    assert report.prompt_sets["arithmetic"] == (14, (6, 1), 1)
    cache = open_cache(tmp_path / "sub.zarr")
    assert cache.prompt_sets == ["arithmetic"]
    assert cache.is_complete()
    ds = actstore.open(tmp_path / "sub.zarr", group="arithmetic", decode_bfloat16=False)
    assert list(ds["layer"].values) == [6, 1]
    want = a.activations["resid_mid"][3:17][:, [2, 0]]
    np.testing.assert_array_equal(_bits(ds["resid_mid"].values), _bits(want))
    np.testing.assert_array_equal(ds["probe_pred"].values, pred[3:17][:, [2, 0]])
    np.testing.assert_array_equal(ds["value"].values, a.metadata.labels["value"][3:17])
    assert [str(t) for t in ds["text"].values] == list(a.metadata.text[3:17])
    np.testing.assert_array_equal(
        ds["span_mask"].values[:, 0], a.metadata.span_masks["answer"][3:17]
    )
    assert cache.spec("arithmetic").provenance["subset_of"]["prompts"] == list(range(3, 17))


def test_copy_prompt_list(source, tmp_path) -> None:
    path, _a, b, *_ = source
    copy_cache(path, tmp_path / "p.zarr", prompt_sets=["physics"], prompts=[10, 0, 4])
    ds = actstore.open(tmp_path / "p.zarr", group="physics")
    np.testing.assert_array_equal(ds["resid_post"].values, b.activations["resid_post"][[10, 0, 4]])


def test_zip_copy_opens_directly(source, tmp_path) -> None:
    path, a, *_ = source
    copy_cache(path, tmp_path / "c.zip", layers=[4], prompt_sets=["arithmetic"])
    assert zipfile.is_zipfile(tmp_path / "c.zip")
    assert not list(tmp_path.glob(".actstore-copy-*"))  # temporary build folder removed
    ds = actstore.open(tmp_path / "c.zip", group="arithmetic", decode_bfloat16=False)
    np.testing.assert_array_equal(
        _bits(ds["resid_post"].values), _bits(a.activations["resid_post"][:, [1]])
    )
    copy_cache(path, tmp_path / "full.zip")
    tree = actstore.open(tmp_path / "full.zip")
    assert set(tree.children) == {"arithmetic", "physics", "probes"}
    # a zip cache is read-only: writing to it is refused
    with pytest.raises(ReadOnlyError, match="read-only"):
        open_cache(tmp_path / "c.zip", mode="r+")


def test_copy_of_incomplete_cache_keeps_missing_blocks_missing(tmp_path) -> None:
    syn = make_synthetic()
    write_synthetic(tmp_path / "s.zarr", syn, blocks=[0, 1, 3])
    copy_cache(tmp_path / "s.zarr", tmp_path / "d.zarr")
    assert open_cache(tmp_path / "d.zarr").missing_blocks("arith") == [2, 4]


def test_copy_errors(source, tmp_path) -> None:
    path, *_ = source
    with pytest.raises(UnknownNameError, match="layers"):
        copy_cache(path, tmp_path / "x.zarr", layers=[99])
    with pytest.raises(UnknownNameError, match="'physics'"):  # arithmetic has 4, physics not
        copy_cache(path, tmp_path / "x.zarr", layers=[4])
    with pytest.raises(UnknownNameError, match="'nope'"):
        copy_cache(path, tmp_path / "x.zip", prompt_sets=["nope"])
    with pytest.raises(UnknownNameError, match="prompt indices"):
        copy_cache(path, tmp_path / "x.zarr", prompts=[0, 500])
    with pytest.raises(InvalidArgumentError, match="existing"):
        copy_cache(path, path)
    assert not (tmp_path / "x.zarr").exists()
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize("codec", ["none", "zstd:-3"])
def test_copy_keeps_the_codec_of_the_source(tmp_path, codec) -> None:
    """breaker11: full and subset copies were re-encoded with the default zstd:1, so the copy's
    spec no longer matched a resume or extension with the source's --codec."""
    import dataclasses
    import json

    syn = make_synthetic(seed=7, n_prompts=9, block_size=3)
    syn = dataclasses.replace(syn, spec=dataclasses.replace(syn.spec, codec=codec))
    write_synthetic(tmp_path / "s.zarr", syn, blocks=[0, 2])  # block 1 missing
    copy_cache(tmp_path / "s.zarr", tmp_path / "full.zarr")
    copy_cache(tmp_path / "s.zarr", tmp_path / "sub.zarr", layers=[1, 6])

    def names(path) -> list[str]:
        meta = json.loads((path / "arith/resid_post/zarr.json").read_text())
        return [c["name"] for c in meta["codecs"][0]["configuration"]["codecs"]]

    want = names(tmp_path / "s.zarr")
    assert want[1:-1] == ([] if codec == "none" else ["zstd"])
    for dst in ("full.zarr", "sub.zarr"):
        assert names(tmp_path / dst) == want
        assert open_cache(tmp_path / dst).spec("arith").codec == codec
    # the full copy resumes with the source's spec (codec included) and reads back bit for bit
    writer = open_cache(tmp_path / "full.zarr", mode="r+").prompt_set_writer("arith", syn.spec)
    writer.write_block(1, {h: a[3:6] for h, a in syn.activations.items()})
    got = actstore.open(tmp_path / "full.zarr", "arith", decode_bfloat16=False)
    np.testing.assert_array_equal(
        _bits(got["resid_post"].values), _bits(syn.activations["resid_post"])
    )
