"""Subset copies and zip caches (issue 10, item 7).

Zips are opened in every spelling a user may type (a path, fsspec ``zip::`` URLs, a cache zipped
inside a folder, a zip on another filesystem) and compared value by value with the directory they
were copied from; damaged zips get one-line errors. Subsets keep each prompt's source index as the
``source_prompt`` coordinate, composed through subsets of subsets, and record the copied layers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import actstore
from actstore.analysis import detect, fit_probes
from actstore.errors import (
    CorruptCacheError,
    InvalidArgumentError,
    NotACacheError,
    StoreNotFoundError,
    UnknownNameError,
)
from actstore.store import cache_info, copy_cache, verify_cache
from tests._fixtures.store import make_synthetic, write_synthetic


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """A float32 cache: prompt set ``arith`` (23 prompts, layers 1, 4, 6, blocks of 5)."""
    path = tmp_path_factory.mktemp("subsets") / "c.zarr"
    write_synthetic(path, make_synthetic(dtype="float32"))
    return path


@pytest.fixture(scope="module")
def zips(src: Path) -> dict[str, Path]:
    root = src.parent
    copy_cache(src, root / "full.zip")
    copy_cache(src, root / "sub.zip", layers=[6, 1], prompts=[-1, 0, 5, 9, 12])
    copy_cache(src, root / "sub.zarr", layers=[6, 1], prompts=[-1, 0, 5, 9, 12])
    # `cd parent && zip -r nested.zip c.zarr`: every entry under c.zarr/, directory entries too
    with zipfile.ZipFile(root / "nested.zip", "w") as zf:
        for dirpath, _dirs, files in os.walk(src):
            rel = Path(dirpath).relative_to(root).as_posix()
            zf.write(dirpath, rel + "/")
            for f in files:
                zf.write(Path(dirpath) / f, f"{rel}/{f}")
    return {"full": root / "full.zip", "sub": root / "sub.zip", "nested": root / "nested.zip"}


def _equal(a: xr.Dataset, b: xr.Dataset) -> None:
    assert sorted(map(str, a.variables)) == sorted(map(str, b.variables))
    for k in a.variables:
        x, y = np.asarray(a[k].values), np.asarray(b[k].values)
        assert x.shape == y.shape, k
        if x.dtype.kind == "f":
            np.testing.assert_array_equal(x, y, err_msg=str(k))
        else:
            assert (x == y).all(), k


@pytest.mark.parametrize(
    "spelling",
    [
        "{full}",
        "zip::file://{full}",
        "zip::{full}",
        "zip://::file://{full}",
        "{nested}",
        "zip::file://{nested}",
        "zip://c.zarr::file://{nested}",
    ],
)
def test_zip_spellings_open_like_the_directory(src, zips, spelling: str) -> None:
    url = spelling.format(full=zips["full"], nested=zips["nested"])
    ref = actstore.open(src, group="arith").load()
    _equal(actstore.open(url, group="arith").load(), ref)
    assert set(actstore.open(url).children) == {"arith"}
    assert cache_info(url)["prompt_sets"]["arith"]["complete"]
    report = verify_cache(url)
    assert report.ok and report.n_objects == verify_cache(src).n_objects


def test_zip_on_another_filesystem(src, zips) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/subsets-test/c.zip", zips["sub"].read_bytes())
    try:
        got = actstore.open("zip::memory://subsets-test/c.zip", group="arith").load()
        _equal(got, actstore.open(zips["sub"], group="arith").load())
        with pytest.raises(StoreNotFoundError, match="got nothing there"):
            actstore.open("zip::memory://subsets-test/none.zip")
    finally:
        fs.rm("/subsets-test", recursive=True)


def test_subset_zip_serves_every_reader(src, zips) -> None:
    url = f"zip::file://{zips['sub']}"
    directory = zips["sub"].parent / "sub.zarr"
    _equal(actstore.open(url, group="arith").load(), actstore.open(directory, "arith").load())
    info = cache_info(url)["prompt_sets"]["arith"]
    assert info["layers"] == [6, 1] and info["n_prompts"] == 5
    assert verify_cache(url).ok
    kw = {"prompt_set": "arith", "target": "value", "alphas": [1.0], "cv": 2, "control": "none"}
    a, b = fit_probes(url, **kw), fit_probes(directory, **kw)
    np.testing.assert_array_equal(a.weights()[0], b.weights()[0])
    da, db = (
        detect(u, a, prompt_set="arith", target="value", span="answer", write=False)
        for u in (url, directory)
    )
    np.testing.assert_array_equal(da.predictions.values, db.predictions.values)


def test_damaged_zips_get_one_line_errors(src, zips, tmp_path) -> None:
    data = zips["full"].read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.zip").write_text("not a zip")
    for name in ("cut.zip", "text.zip"):
        for url in (str(tmp_path / name), f"zip::file://{tmp_path / name}"):
            with pytest.raises(NotACacheError, match="got one zipfile cannot read"):
                actstore.open(url)
    with pytest.raises(StoreNotFoundError):
        actstore.open(f"zip::file://{tmp_path / 'none.zip'}")
    # one stored chunk's bytes flipped: zipfile's CRC catches it on read
    with zipfile.ZipFile(zips["full"]) as zf:
        info = zf.getinfo("arith/resid_post/c/0/0/0/0")
    bad = bytearray(data)
    bad[info.header_offset + 30 + len(info.filename) + len(info.extra) + 40] ^= 0xFF
    (tmp_path / "flip.zip").write_bytes(bytes(bad))
    report = verify_cache(tmp_path / "flip.zip")
    assert [(p.kind, p.key) for p in report.problems] == [("corrupt", "arith/resid_post/c/0/0/0/0")]
    assert "Bad CRC-32" in report.problems[0].detail
    with pytest.raises(CorruptCacheError, match="expected intact data in array 'arith/resid"):
        actstore.open(tmp_path / "flip.zip", group="arith")["resid_post"].values
    proc = _cli("info", str(tmp_path / "cut.zip"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"actstore: error: expected a zip file at '{tmp_path}/cut.zip'")


def test_plain_xarray_reads_a_zip_cache_with_zarrs_zipstore(src, zips) -> None:
    """The recipe of docs/subsets-and-zips.md: no actstore call besides the reference."""
    import zarr

    ref = actstore.open(src, group="arith")
    store = zarr.storage.ZipStore(zips["full"], mode="r")
    ds = xr.open_zarr(store, group="arith", consolidated=False)
    np.testing.assert_array_equal(ds["resid_post"].values, ref["resid_post"].values)
    np.testing.assert_array_equal(ds["value"].values, ref["value"].values)
    nested = zarr.storage.ZipStore(zips["nested"], mode="r")
    ds = xr.open_zarr(nested, group="c.zarr/arith", consolidated=False)
    np.testing.assert_array_equal(ds["resid_post"].values, ref["resid_post"].values)
    sub = xr.open_zarr(
        zarr.storage.ZipStore(zips["sub"], mode="r"), group="arith", consolidated=False
    )
    assert "source_prompt" in sub.coords
    assert sub["source_prompt"].values.tolist() == [22, 0, 5, 9, 12]


def test_subset_keeps_source_prompt_and_records_what_it_copied(src, zips, tmp_path) -> None:
    ref = actstore.open(src, group="arith").load()
    for where in (zips["sub"], zips["sub"].parent / "sub.zarr"):
        ds = actstore.open(where, group="arith").load()
        assert ds["prompt"].values.tolist() == [0, 1, 2, 3, 4]  # renumbered
        assert ds["source_prompt"].values.tolist() == [22, 0, 5, 9, 12]
        assert "source_prompt" in ds.coords
        expect = ref.isel(prompt=ds["source_prompt"].values).sel(layer=[6, 1])
        for k in ("resid_post", "value", "x", "template", "text", "token_str", "span_mask"):
            assert (np.asarray(ds[k].values) == np.asarray(expect[k].values)).all(), k
        spec = ds.attrs["actstore"]["spec"]
        assert spec["layers"] == [6, 1]
        sub = spec["provenance"]["subset_of"]
        assert sub["layers"] == [6, 1] and sub["source_layers"] == [1, 4, 6]
        assert sub["prompts"] == [22, 0, 5, 9, 12] and sub["source_n_prompts"] == 23
    # a subset of a subset composes the index; its provenance keeps the chain
    copy_cache(zips["sub"], tmp_path / "s2.zarr", prompts=slice(1, None, 2), layers=[1])
    s2 = actstore.open(tmp_path / "s2.zarr", group="arith").load()
    assert s2["source_prompt"].values.tolist() == [0, 9]
    np.testing.assert_array_equal(s2["resid_post"].values, ref["resid_post"].values[[0, 9]][:, [0]])
    chain = s2.attrs["actstore"]["spec"]["provenance"]["subset_of"]
    assert chain["prompts"] == [1, 3] and chain["layers"] == [1]
    assert chain["source_subset_of"]["prompts"] == [22, 0, 5, 9, 12]
    # a full copy of a subset keeps the index; a full copy of a whole cache has none
    copy_cache(tmp_path / "s2.zarr", tmp_path / "s3.zarr")
    s3 = actstore.open(tmp_path / "s3.zarr", group="arith")
    assert s3["source_prompt"].values.tolist() == [0, 9]
    assert "source_prompt" not in actstore.open(zips["full"], group="arith").variables


def test_prompt_selection_errors(src, tmp_path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"got \[22\] more than once"):
        copy_cache(src, tmp_path / "d.zarr", prompts=[-1, 22])
    with pytest.raises(UnknownNameError, match=r"in \[-23, 23\), got \[-24\]"):
        copy_cache(src, tmp_path / "d.zarr", prompts=[-24])
    assert not (tmp_path / "d.zarr").exists()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "actstore", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (("--prompts", "-1,0"), [22, 0]),
        (("--prompts=-1,0",), [22, 0]),
        (("--prompts", "-3:"), [20, 21, 22]),
        (("--prompts", "-5:-1:2"), [18, 20]),
        (("--prompts", "0,-2", "--layers", "4"), [0, 21]),
    ],
)
def test_cli_negative_prompt_indices_are_values(src, tmp_path, argv, expect) -> None:
    dst = tmp_path / "d.zarr"
    proc = _cli("copy", str(src), str(dst), *argv)
    assert proc.returncode == 0, proc.stderr
    assert actstore.open(dst, group="arith")["source_prompt"].values.tolist() == expect


def test_cli_bad_prompt_lists_are_one_line(src, tmp_path) -> None:
    proc = _cli("copy", str(src), str(tmp_path / "d.zarr"), "--prompts", "-1,22")
    assert proc.returncode == 2
    assert proc.stderr == (
        "actstore: error: expected distinct prompts, got [22] more than once (negative indices "
        "count from the end); list each prompt once\n"
    )
    proc = _cli("copy", str(src), str(tmp_path / "d.zarr"), "--bogus")  # options still options
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr


def test_subset_of_an_older_subset_and_of_a_zip_url(src, zips, tmp_path) -> None:
    """A subset written before ``source_prompt`` existed has only ``subset_of.prompts``."""
    import zarr

    old = tmp_path / "old.zarr"
    copy_cache(src, old, prompts=[4, 17, 2, 9])
    group = zarr.open_group(old / "arith", mode="r+")
    del group["source_prompt"]
    del group.attrs["coordinates"]
    assert "source_prompt" not in actstore.open(old, group="arith").variables
    copy_cache(old, tmp_path / "new.zarr", prompts=[-1, 1])
    new = actstore.open(tmp_path / "new.zarr", group="arith")
    assert new["source_prompt"].values.tolist() == [9, 17]
    ref = actstore.open(src, group="arith")
    np.testing.assert_array_equal(new["resid_post"].values, ref["resid_post"].values[[9, 17]])
    # a zip URL as the source of a copy, into a directory and into another zip
    copy_cache(f"zip::file://{zips['sub']}", tmp_path / "z.zarr", prompts=[-1])
    copy_cache(f"zip::file://{zips['sub']}", tmp_path / "z.zip")
    assert actstore.open(tmp_path / "z.zarr", group="arith")["source_prompt"].values == [12]
    _equal(
        actstore.open(tmp_path / "z.zip", group="arith").load(),
        actstore.open(zips["sub"], group="arith").load(),
    )
