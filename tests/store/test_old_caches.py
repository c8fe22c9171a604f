"""A cache written by release 0.1 stays readable, checkable and resumable with today's code.

``tests/data/cache_v0_1.zip`` was written once by commit 3aa66b6 (``tests/data/make_cache_v0_1.py``
says how): before the ``codec`` spec field, the probes' alpha-edge and p-value variables and
materialised positions. Every later field must have a default that reads such a cache as it was
written; this file is where a change that forgets it fails.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import actstore
from actstore import analysis
from actstore.store import materialize_positions, open_cache, verify_cache
from tests._fixtures.store import make_synthetic

DATA = Path(__file__).resolve().parents[1] / "data"
ZIP = DATA / "cache_v0_1.zip"
EXPECTED = DATA / "cache_v0_1_expected.npz"


@pytest.fixture
def old_cache(tmp_path: Path) -> Path:
    """A writable directory copy of the 0.1 cache."""
    with zipfile.ZipFile(ZIP) as zf:
        zf.extractall(tmp_path)
    return tmp_path / "cache.zarr"


def _bits(ds, name: str) -> np.ndarray:
    return np.asarray(ds[name]["resid_post"].values)


def test_zip_opens_and_reads_the_bits_written() -> None:
    expected = np.load(EXPECTED)
    tree = actstore.open(str(ZIP), decode_bfloat16=False)
    assert np.array_equal(_bits(tree, "arith").view(np.uint16), expected["arith"])
    assert np.array_equal(_bits(tree, "f32"), expected["f32"])
    decoded = actstore.open(str(ZIP))["arith"]["resid_post"].values
    ref = (expected["arith"].astype(np.uint32) << 16).view(np.float32)
    assert np.array_equal(decoded, ref)


def test_verify_finds_nothing_wrong(old_cache: Path) -> None:
    report = verify_cache(str(old_cache))
    assert report.problems == [], report.problems[:3]


def test_saved_probes_load_and_reproduce_the_stored_predictions(old_cache: Path) -> None:
    probes = analysis.load_probes(str(old_cache), name="p")
    ds = actstore.open(str(old_cache))["arith"]
    x = ds["resid_post"].values.astype(np.float64)  # (prompt, layer, token, d_model)
    coef, intercept = probes.weights()  # (layer, d_model), (layer,)
    pred = np.einsum("pltd,ld->plt", x, coef) + np.asarray(intercept)[None, :, None]
    stored = ds["pred_p"].values  # (prompt, layer, token)
    real = np.arange(x.shape[2])[None, :] < ds["n_tokens"].values[:, None]
    mask = np.broadcast_to(real[:, None, :], stored.shape)
    np.testing.assert_allclose(stored[mask], pred[mask], rtol=1e-5, atol=1e-4)


def test_fit_on_the_old_cache_equals_the_new_cache_of_the_same_bits(tmp_path: Path) -> None:
    from tests._fixtures.store import write_synthetic

    write_synthetic(tmp_path / "new.zarr", make_synthetic(seed=0), name="arith")
    kw = {"prompt_set": "arith", "target": "value", "position": "last"}
    old = analysis.fit_probes(str(ZIP), **kw)
    new = analysis.fit_probes(str(tmp_path / "new.zarr"), **kw)
    assert np.array_equal(old.weights()[0], new.weights()[0])


def test_an_unfinished_set_resumes_with_todays_writer(old_cache: Path) -> None:
    expected = np.load(EXPECTED)["partial"]
    part = make_synthetic(seed=2, n_prompts=24, block_size=5)  # the spec 0.1 wrote it with
    cache = open_cache(str(old_cache), mode="r+")
    writer = cache.prompt_set_writer("partial", part.spec, part.metadata)
    assert writer.missing_blocks() == [1, 2, 4]
    for b in writer.missing_blocks():
        start, stop = writer.block_range(b)
        writer.write_block(b, {"resid_post": part.activations["resid_post"][start:stop]})
    got = actstore.open(str(old_cache), decode_bfloat16=False)["partial"]["resid_post"].values
    assert np.array_equal(got.view(np.uint16), expected)
    assert verify_cache(str(old_cache)).problems == []


def test_positions_materialise_on_an_old_cache_and_fit_the_same(old_cache: Path) -> None:
    kw = {"prompt_set": "arith", "target": "value", "position": "last"}
    before = analysis.fit_probes(str(old_cache), **kw)
    materialize_positions(open_cache(str(old_cache), mode="r+"), "arith", "last")
    after = analysis.fit_probes(str(old_cache), **kw)
    assert np.array_equal(before.weights()[0], after.weights()[0])


def test_copy_of_the_old_zip_is_a_valid_cache(tmp_path: Path) -> None:
    shutil.copy(ZIP, tmp_path / "c.zip")
    dest = tmp_path / "copy.zarr"
    actstore.store.copy_cache(str(tmp_path / "c.zip"), str(dest))
    assert verify_cache(str(dest)).problems == []
    expected = np.load(EXPECTED)
    got = actstore.open(str(dest), decode_bfloat16=False)["arith"]["resid_post"].values
    assert np.array_equal(got.view(np.uint16), expected["arith"])
