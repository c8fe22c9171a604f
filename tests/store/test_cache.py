"""Create, write, resume and open caches: round trips against the arrays that were written."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import xarray as xr

import actstore
from actstore.errors import (
    FingerprintMismatchError,
    IncompleteCacheWarning,
    InvalidArgumentError,
    NotACacheError,
    ReadOnlyError,
    SchemaVersionError,
    StoreNotFoundError,
    UnknownNameError,
)
from actstore.store import create_cache, open_cache
from tests._fixtures.store import make_synthetic, write_synthetic


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.view({2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_round_trip_all_dtypes_bit_exact(tmp_path, dtype) -> None:
    syn = make_synthetic(dtype=dtype, hooks=("resid_post", "resid_mid"), seed=3)
    write_synthetic(tmp_path / "c.zarr", syn)
    ds = actstore.open(tmp_path / "c.zarr", group="arith", decode_bfloat16=False)
    for hook in ("resid_post", "resid_mid"):
        assert ds[hook].dims == ("prompt", "layer", "token", "d_model")
        assert ds[hook].dtype == syn.activations[hook].dtype
        np.testing.assert_array_equal(_bits(ds[hook].values), _bits(syn.activations[hook]))


def test_metadata_round_trip(synthetic_cache) -> None:
    path, syn = synthetic_cache
    ds = actstore.open(path, group="arith")
    meta = syn.metadata
    assert list(ds["layer"].values) == [1, 4, 6]
    assert list(ds["prompt"].values) == list(range(23))
    assert list(ds["token"].values) == list(range(7))
    assert [str(t) for t in ds["text"].values] == list(meta.text)
    np.testing.assert_array_equal(ds["n_tokens"].values, meta.n_tokens)
    pad = np.arange(7)[None, :] >= meta.n_tokens[:, None]
    np.testing.assert_array_equal(ds["token_id"].values, np.where(pad, -1, meta.token_id))
    np.testing.assert_array_equal(
        ds["token_str"].values.astype(str), np.where(pad, "", meta.token_str).astype(str)
    )
    np.testing.assert_array_equal(ds["value"].values, meta.labels["value"])
    assert ds["x"].dtype == np.float64
    assert list(ds["template"].values.astype(str)) == list(meta.labels["template"])
    assert list(ds["span"].values.astype(str)) == ["answer", "operands"]
    for i, name in enumerate(["answer", "operands"]):
        np.testing.assert_array_equal(ds["span_mask"].values[:, i, :], meta.span_masks[name])
    # no NaN masking of fill values (labels 0.0, token_id -1, zero activations)
    assert not np.isnan(ds["value"].values).any()
    assert not np.isnan(ds["resid_post"].astype("float32").values).any()


def test_open_is_lazy_with_dask_and_casts(synthetic_cache) -> None:
    path, syn = synthetic_cache
    ds = actstore.open(path, group="arith", dtype="float32")
    assert ds["resid_post"].chunks is not None
    assert ds["resid_post"].dtype == np.float32
    one_layer = ds["resid_post"].sel(layer=4).values
    np.testing.assert_array_equal(one_layer, syn.activations["resid_post"][:, 1].astype(np.float32))


def test_datatree_has_every_prompt_set(tmp_path) -> None:
    a, b = make_synthetic(seed=1), make_synthetic(seed=2, n_prompts=9, layers=(0,), dtype="float32")
    write_synthetic(tmp_path / "c.zarr", a, name="arithmetic")
    write_synthetic(tmp_path / "c.zarr", b, name="physics")
    tree = actstore.open(tmp_path / "c.zarr")
    assert isinstance(tree, xr.DataTree)
    assert set(tree.children) == {"arithmetic", "physics"}
    assert tree["physics"].dataset.sizes["prompt"] == 9
    np.testing.assert_array_equal(tree["physics"]["resid_post"].values, b.activations["resid_post"])
    assert tree.attrs["actstore"]["schema_version"] == 1


def test_resume_after_crash_between_shard_writes(tmp_path) -> None:
    syn = make_synthetic()
    path = tmp_path / "c.zarr"
    _, writer = write_synthetic(path, syn, blocks=[0, 2])
    assert writer.n_blocks == 5
    # a new process resumes with only the name: it sees exactly what was recorded
    cache = open_cache(path, mode="r+")
    resumed = cache.prompt_set_writer("arith")
    assert resumed.missing_blocks() == [1, 3, 4]
    with pytest.warns(IncompleteCacheWarning, match=r"3 of 5 blocks missing \(1, 3, 4"):
        actstore.open(path, group="arith")
    for b in resumed.missing_blocks():
        s, e = resumed.block_range(b)
        resumed.write_block(b, {"resid_post": syn.activations["resid_post"][s:e]})
    assert resumed.is_complete()
    assert cache.is_complete()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = actstore.open(path, group="arith", decode_bfloat16=False)
    np.testing.assert_array_equal(
        _bits(ds["resid_post"].values), _bits(syn.activations["resid_post"])
    )


def test_shard_written_but_not_recorded_is_redone(tmp_path) -> None:
    # crash after the shard write returned but before its completion was recorded
    syn = make_synthetic()
    path = tmp_path / "c.zarr"
    _, writer = write_synthetic(path, syn, blocks=[0])
    writer._arrays["resid_post"][5:10] = syn.activations["resid_post"][5:10]
    assert open_cache(path).missing_blocks("arith") == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"fingerprint": {"model": "sha256:other", "tokenizer": "t1", "prompts": "p1"}}, "model"),
        ({"dtype": "float32"}, "dtype"),
        ({"layers": (1, 4, 7)}, "layers"),
        ({"n_prompts": 24}, "n_prompts"),
        ({"block_size": 6}, "block_size"),
    ],
)
def test_fingerprint_mismatch_is_refused_naming_the_field(tmp_path, change, field) -> None:
    syn = make_synthetic()
    path = tmp_path / "c.zarr"
    write_synthetic(path, syn, blocks=[0])
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    other = dataclasses.replace(syn.spec, **change)
    with pytest.raises(FingerprintMismatchError, match=field):
        open_cache(path, mode="r+").prompt_set_writer("arith", other, syn.metadata)
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before


def test_write_block_validates_input(tmp_path) -> None:
    syn = make_synthetic()
    _, writer = write_synthetic(tmp_path / "c.zarr", syn, blocks=[])
    good = syn.activations["resid_post"][:5]
    with pytest.raises(InvalidArgumentError, match="dtype bfloat16"):
        writer.write_block(0, {"resid_post": good.astype(np.float32)})
    with pytest.raises(InvalidArgumentError, match="shape"):
        writer.write_block(0, {"resid_post": good[:4]})
    with pytest.raises(InvalidArgumentError, match="hooks"):
        writer.write_block(0, {"resid_mid": good})
    with pytest.raises(InvalidArgumentError, match="block index"):
        writer.write_block(5, {"resid_post": good})
    assert writer.missing_blocks() == [0, 1, 2, 3, 4]


def test_errors_for_missing_path_and_non_cache(tmp_path) -> None:
    with pytest.raises(StoreNotFoundError, match="no such file"):
        open_cache(tmp_path / "nope.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotACacheError, match=r"no zarr\.json"):
        actstore.open(tmp_path / "empty")
    import zarr

    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(NotACacheError, match="not written by actstore"):
        open_cache(tmp_path / "plain.zarr")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(NotACacheError, match="other files"):
        create_cache(tmp_path / "junk")


def test_schema_version_error(synthetic_cache) -> None:
    path, _ = synthetic_cache
    meta_path = path / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["actstore"]["schema_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SchemaVersionError, match="expected schema version 1, got 99"):
        actstore.open(path)


def test_unknown_names_and_read_only(synthetic_cache) -> None:
    path, syn = synthetic_cache
    cache = open_cache(path)
    with pytest.raises(UnknownNameError, match="'physics'"):
        actstore.open(path, group="physics")
    with pytest.raises(UnknownNameError, match="arith"):
        cache.missing_blocks("nope")
    with pytest.raises(ReadOnlyError, match="read-only"):
        cache.prompt_set_writer("arith")
    with pytest.raises(ReadOnlyError):
        cache.write_derived(
            "arith", "probe_pred", np.zeros((23, 3, 7)), dims=("prompt", "layer", "token")
        )
    with pytest.raises(UnknownNameError, match="pass spec and metadata"):
        open_cache(path, mode="r+").prompt_set_writer("physics")
    with pytest.raises(InvalidArgumentError, match="reserved"):
        open_cache(path, mode="r+").prompt_set_writer("probes", syn.spec, syn.metadata)


def test_write_derived_keeps_bookkeeping(synthetic_cache) -> None:
    import dask.array as da

    path, _ = synthetic_cache
    cache = open_cache(path, mode="r+")
    pred = np.random.default_rng(0).standard_normal((23, 3, 7)).astype(np.float32)
    cache.write_derived(
        "arith",
        "probe_pred",
        da.from_array(pred, chunks=(4, 2, 7)),
        dims=("prompt", "layer", "token"),
        attrs={"probe": "value", "trained_on": "arith"},
    )
    assert cache.missing_blocks("arith") == []
    ds = actstore.open(path, group="arith")
    np.testing.assert_array_equal(ds["probe_pred"].values, pred)
    assert ds["probe_pred"].attrs["actstore"]["lineage"]["probe"] == "value"
    # replaced on a second write; transposed xarray input is accepted
    arr = xr.DataArray(pred.transpose(1, 0, 2) * 2, dims=("layer", "prompt", "token"))
    cache.write_derived("arith", "probe_pred", arr, dims=("prompt", "layer", "token"), attrs={})
    np.testing.assert_array_equal(actstore.open(path, group="arith")["probe_pred"].values, pred * 2)
    with pytest.raises(InvalidArgumentError, match="shape"):
        cache.write_derived("arith", "p2", pred[:3], dims=("prompt", "layer", "token"))
    with pytest.raises(InvalidArgumentError, match="the name of its activations"):
        cache.write_derived("arith", "resid_post", pred, dims=("prompt", "layer", "token"))


def test_write_and_read_dataset(synthetic_cache) -> None:
    path, _ = synthetic_cache
    cache = open_cache(path, mode="r+")
    ds = xr.Dataset(
        {
            "coef": (("layer", "d_model"), np.arange(48.0).reshape(3, 16)),
            "intercept": ("layer", [0.5, 1.0, 2.0]),
        },
        coords={"layer": [1, 4, 6]},
        attrs={"target": "value", "alphas": [0.1, 1.0]},
    )
    cache.write_dataset("probes/value", ds)
    back = cache.read_dataset("probes/value")
    xr.testing.assert_identical(back, ds)
    assert cache.prompt_sets == ["arith"]  # probes is not a prompt set
    tree = actstore.open(path)
    np.testing.assert_array_equal(tree["probes/value"]["coef"].values, ds["coef"].values)
    with pytest.raises(UnknownNameError):
        cache.read_dataset("probes/none")
    with pytest.raises(InvalidArgumentError, match="not a prompt set"):
        cache.write_dataset("arith", ds)


def test_creation_interrupted_before_ready_is_finished_on_resume(tmp_path) -> None:
    from actstore.errors import IncompleteCacheError

    syn = make_synthetic()
    path = tmp_path / "c.zarr"
    write_synthetic(path, syn, blocks=[])
    # simulate a crash during creation: the set's attrs exist, its metadata is not marked ready
    meta_path = path / "arith" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["actstore"]["ready"] = False
    meta_path.write_text(json.dumps(meta))
    (path / "arith" / "text" / "c" / "0").unlink()
    cache = open_cache(path, mode="r+")
    assert cache.missing_blocks("arith") == [0, 1, 2, 3, 4]
    with pytest.raises(IncompleteCacheError, match="interrupted during creation"):
        cache.prompt_set_writer("arith")
    writer = cache.prompt_set_writer("arith", syn.spec, syn.metadata)
    assert writer.missing_blocks() == [0, 1, 2, 3, 4]
    with pytest.warns(IncompleteCacheWarning):
        ds = actstore.open(path, group="arith")
    assert [str(t) for t in ds["text"].values] == list(syn.metadata.text)


def test_create_cache_is_idempotent_and_keeps_data(synthetic_cache) -> None:
    path, syn = synthetic_cache
    cache = create_cache(path, provenance={"other": 1})
    assert cache.is_complete()
    assert cache.attrs["provenance"] == {}
    writer = cache.prompt_set_writer("arith", syn.spec, syn.metadata)
    assert writer.missing_blocks() == []


_AS_NOBODY = """
import os, sys
import actstore.errors
from actstore.store import create_cache
# create_cache reads library versions (importlib.metadata imports email.parser on first use):
# import it while the interpreter's own files (here under root's home) are still readable
import email.parser, importlib.metadata
os.setgroups([])
os.setgid(65534)
os.setuid(65534)  # from here on, file permissions apply (root ignores them)
try:
    create_cache(sys.argv[1])
except actstore.errors.ActstoreError as exc:
    print(type(exc).__name__, exc)
else:
    print("created")
"""


def test_read_only_location_is_a_read_only_error(tmp_path) -> None:
    """A directory without write permission. Root ignores permissions, so as root (here and in CI)
    the attempt runs in a child process that imports actstore, then drops to user ``nobody``."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            with pytest.raises(ReadOnlyError, match="writable"):
                create_cache(ro / "c.zarr")
        finally:
            ro.chmod(0o755)
        return
    # pytest's tmp_path lies under a root-only (0700) directory: nobody could not even reach it
    base = tempfile.mkdtemp(prefix="actstore-ro-")
    try:
        os.chmod(base, 0o755)
        ro = os.path.join(base, "ro")
        os.mkdir(ro, 0o555)
        os.chmod(ro, 0o555)
        r = subprocess.run(
            [sys.executable, "-c", _AS_NOBODY, os.path.join(ro, "c.zarr")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("ReadOnlyError "), r.stdout + r.stderr
        assert "writable" in r.stdout
        assert os.listdir(ro) == []
    finally:
        os.chmod(base, 0o755)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    ("exc", "err"),
    [
        (PermissionError(13, "Permission denied"), ReadOnlyError),
        (OSError(28, "No space left on device"), "DiskFullError"),
    ],
)
def test_write_failures_leave_block_unrecorded(tmp_path, monkeypatch, exc, err) -> None:
    from zarr.storage import LocalStore

    import actstore.errors as errors

    err = getattr(errors, err) if isinstance(err, str) else err
    syn = make_synthetic()
    _, writer = write_synthetic(tmp_path / "c.zarr", syn, blocks=[0])

    async def failing_set(self, key, value, *args, **kwargs):
        raise exc

    def failing_file(root, key, pieces):  # the shard files actstore writes itself
        raise exc

    from actstore.store.core import _chunkcodec

    monkeypatch.setattr(LocalStore, "set", failing_set)
    monkeypatch.setattr(_chunkcodec, "write_file", failing_file)
    with pytest.raises(err, match="expected"):
        writer.write_block(1, {"resid_post": syn.activations["resid_post"][5:10]})
    monkeypatch.undo()
    assert writer.missing_blocks() == [1, 2, 3, 4]


def test_string_dtype_inputs_are_accepted(tmp_path) -> None:
    syn = make_synthetic()
    sdt = np.dtypes.StringDType()
    meta = dataclasses.replace(
        syn.metadata,
        token_str=np.asarray(syn.metadata.token_str.astype(str), dtype=sdt),
        labels={"template": np.asarray(syn.metadata.labels["template"], dtype=sdt)},
    )
    cache = create_cache(tmp_path / "c.zarr")
    cache.prompt_set_writer("arith", syn.spec, meta)
    with pytest.warns(IncompleteCacheWarning):
        ds = actstore.open(tmp_path / "c.zarr", group="arith")
    assert ds["template"].dtype == object
    assert list(ds["template"].values) == list(syn.metadata.labels["template"])
    assert ds["token_str"].values[0, 0] == syn.metadata.token_str[0, 0]


def test_interrupted_creation_is_reported_by_open_info_and_copy(tmp_path) -> None:
    from actstore.errors import IncompleteCacheError
    from actstore.store import cache_info, copy_cache

    a, b = make_synthetic(seed=1), make_synthetic(seed=2)
    path = tmp_path / "c.zarr"
    write_synthetic(path, a, name="done")
    write_synthetic(path, b, name="broken", blocks=[])
    meta_path = path / "broken" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["actstore"]["ready"] = False
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(IncompleteCacheError, match="interrupted"):
        actstore.open(path, group="broken")
    with pytest.warns(IncompleteCacheWarning, match="'broken'"):
        tree = actstore.open(path)
    assert set(tree.children) == {"done"}
    info = cache_info(path)
    assert info["prompt_sets"]["broken"]["ready"] is False
    assert info["complete"] is False
    copy_cache(path, tmp_path / "copy.zarr")
    assert open_cache(tmp_path / "copy.zarr").prompt_sets == ["done"]
    with pytest.raises(IncompleteCacheError):
        copy_cache(path, tmp_path / "copy2.zarr", prompt_sets=["broken"])


def test_activations_selects_layers_and_names_unknown_ones(synthetic_cache) -> None:
    path, syn = synthetic_cache
    cache = open_cache(path)
    x = cache.activations("arith", layers=[6, 1], dtype="float32")
    assert x.dims == ("prompt", "layer", "token", "d_model")
    np.testing.assert_array_equal(
        x.values, syn.activations["resid_post"][:, [2, 0]].astype(np.float32)
    )
    with pytest.raises(UnknownNameError, match=r"\[5\]"):
        cache.activations("arith", layers=[5])
    with pytest.raises(UnknownNameError, match="'resid_mid'"):
        cache.activations("arith", "resid_mid")
