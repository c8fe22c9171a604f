"""Consolidated metadata: remote opens in a constant number of requests, never stale, never unsafe.

Requests are counted at a loopback S3 server (moto), in its WSGI application: what went over the
wire, whatever the client did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import actstore
from actstore import show_progress
from actstore.errors import CorruptCacheError, IncompleteCacheWarning, UnsafeCacheError
from actstore.store import copy_cache, open_cache, repair_cache, verify_cache
from actstore.store.core._open import open_tree
from tests._fixtures.store import make_synthetic, write_synthetic
from tests.reliability._hostile import OpenFile

ROOT = Path(__file__).resolve().parents[2]


def _fs(s3_server):
    import s3fs

    return s3fs.S3FileSystem(**s3_server.storage_options)


def _tree(tmp_path: Path, n_sets: int, extra_vars: int = 0) -> Path:
    """A local cache with *n_sets* prompt sets and *extra_vars* derived variables in each."""
    path = tmp_path / f"tree{n_sets}_{extra_vars}.zarr"
    for i in range(n_sets):
        syn = make_synthetic(seed=i, n_prompts=8, block_size=4)
        cache, _ = write_synthetic(path, syn, name=f"set{i}")
        for v in range(extra_vars):
            data = np.full((syn.spec.n_prompts, len(syn.spec.layers)), float(v), np.float32)
            cache.write_derived(f"set{i}", f"extra{v}", data, dims=("prompt", "layer"))
    return path


def _upload(s3_server, local: Path, name: str) -> str:
    """Byte for byte, as `aws s3 sync` would (the consolidated metadata travels with it)."""
    _fs(s3_server).put(str(local), f"caches/{name}", recursive=True)
    return f"s3://caches/{name}"


@pytest.fixture(scope="module")
def trees(s3_server, tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("trees")
    return {
        "one set": _upload(s3_server, _tree(tmp, 1), "one.zarr"),
        "two sets": _upload(s3_server, _tree(tmp, 2), "two.zarr"),
        "three sets, 4 more variables each": _upload(s3_server, _tree(tmp, 3, 4), "big.zarr"),
    }


def _count(s3_server, fn) -> int:
    with s3_server.count() as log:
        fn()
    return len(log)


def test_remote_open_makes_a_constant_number_of_requests(s3_server, trees) -> None:
    so = s3_server.storage_options
    urls = trees
    tree = {
        k: _count(s3_server, lambda u=u: actstore.open(u, storage_options=so))
        for k, u in urls.items()
    }
    group = {
        k: _count(s3_server, lambda u=u: actstore.open(u, group="set0", storage_options=so))
        for k, u in urls.items()
    }
    plain = {
        k: _count(
            s3_server,
            lambda u=u: xr.open_zarr(u, group="set0", storage_options=so, zarr_format=3),
        )
        for k, u in urls.items()
    }
    plain_default = {
        k: _count(s3_server, lambda u=u: xr.open_zarr(u, group="set0", storage_options=so))
        for k, u in urls.items()
    }
    for counts in (tree, group, plain):
        assert max(counts.values()) <= 10, (tree, group, plain)
    for counts in (tree, group, plain, plain_default):
        assert len(set(counts.values())) == 1, (tree, group, plain, plain_default)
    # the per-file scan, for comparison: what every open cost before
    per_file = _count(s3_server, lambda: open_tree(open_cache(urls["one set"], storage_options=so)))
    assert per_file > 5 * tree["one set"]


def test_consolidated_open_equals_the_per_file_open(s3_server, tmp_path) -> None:
    so = s3_server.storage_options
    local = _tree(tmp_path, 2, 1)
    url = _upload(s3_server, local, "same.zarr")
    assert open_cache(url, storage_options=so, consolidated=True).scan.consolidated
    fast = actstore.open(url, storage_options=so, dtype="float32")  # (xarray compares no bf16)
    slow = open_tree(open_cache(url, storage_options=so), dtype="float32")
    xr.testing.assert_identical(fast, slow)
    here = actstore.open(local, dtype="float32")
    for name in ("set0", "set1"):  # (the copy's root records its own creation time)
        xr.testing.assert_identical(fast[name].to_dataset(), here[name].to_dataset())
    np.testing.assert_array_equal(
        actstore.open(url, group="set1", storage_options=so, decode_bfloat16=False)[
            "resid_post"
        ].values.view(np.uint16),
        make_synthetic(seed=1, n_prompts=8, block_size=4).activations["resid_post"].view(np.uint16),
    )
    # plain xarray reads the same data through the consolidated metadata
    plain = xr.open_zarr(url, group="set1", storage_options=so, zarr_format=3)
    np.testing.assert_array_equal(plain["extra0"].values, fast["set1"]["extra0"].values)


def test_an_edit_without_reconsolidation_is_never_trusted(s3_server, tmp_path) -> None:
    """A node changed in place, added or removed behind actstore's back: the open notices and
    reads the files (each case as the per-file open reads it)."""
    so = s3_server.storage_options
    fs = _fs(s3_server)
    url = _upload(s3_server, _tree(tmp_path, 2), "edited.zarr")
    key = "caches/edited.zarr/set1/zarr.json"
    doc = json.loads(fs.cat(key))
    doc["attributes"]["actstore"]["ready"] = False  # in place: one byte longer
    fs.pipe(key, json.dumps(doc).encode())
    with pytest.warns(IncompleteCacheWarning, match="its creation was interrupted"):
        tree = actstore.open(url, storage_options=so)
    assert "set1" not in tree.children
    # same size, other content: caught by the MD5 S3 lists with every object
    doc["attributes"]["actstore"]["ready"] = True
    body = json.dumps(doc).encode()
    fs.pipe(key, body)
    doc["attributes"]["actstore"]["created_by"] = "x"
    fs.pipe(key, json.dumps(doc).encode().replace(b'"x"', b'"y"'))
    assert (
        actstore.open(url, group="set1", storage_options=so).attrs["actstore"]["created_by"] == "y"
    )
    # a node added by another tool
    import zarr

    group = zarr.open_group(url, path="set0", mode="r+", storage_options=so, use_consolidated=False)
    group.create_array("added", shape=(8,), dtype="int8", dimension_names=["prompt"])
    assert "added" in actstore.open(url, group="set0", storage_options=so)
    assert "added" in actstore.open(url, storage_options=so)["set0"]


_KILLED = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import actstore.store.core._consolidated as consolidated
    from actstore.store import open_cache
    url, options = sys.argv[1], eval(sys.argv[2])
    cache = open_cache(url, mode="r+", storage_options=options)
    # the kill point: the derived variable is written, consolidation has not run yet
    consolidated.reconsolidate = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    cache.write_derived("set0", "probe_pred", np.ones((8, 3), np.float32), dims=("prompt", "layer"))
    """
)


def test_killed_between_a_write_and_reconsolidation_opens_correctly(s3_server, tmp_path) -> None:
    so = s3_server.storage_options
    url = _upload(s3_server, _tree(tmp_path, 1), "killed.zarr")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED, url, repr(so)], env=env, cwd=ROOT, capture_output=True
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert not open_cache(url, storage_options=so, consolidated=True).scan.consolidated
    ds = actstore.open(url, group="set0", storage_options=so)
    np.testing.assert_array_equal(ds["probe_pred"].values, np.ones((8, 3), np.float32))
    assert open_cache(url, mode="r+", storage_options=so).consolidate()  # as the next write does
    assert open_cache(url, storage_options=so, consolidated=True).scan.consolidated
    assert _count(s3_server, lambda: actstore.open(url, group="set0", storage_options=so)) <= 10


def test_verify_names_and_repair_rewrites_stale_consolidated_metadata(tmp_path) -> None:
    path = _tree(tmp_path, 1)
    root = json.loads((path / "zarr.json").read_text())
    entry = root["consolidated_metadata"]["metadata"]["set0/value"]
    entry["attributes"] = {"stale": True}
    (path / "zarr.json").write_text(json.dumps(root))
    report = verify_cache(path)
    assert [(p.kind, p.key) for p in report.problems] == [("consolidated", "zarr.json")]
    assert "set0/value" in report.problems[0].detail
    fixed = repair_cache(path)
    assert fixed.consolidated == ["zarr.json"] and fixed.ok
    assert verify_cache(path).ok
    # none at all (a write killed before consolidating): repair writes it
    root = json.loads((path / "zarr.json").read_text())
    del root["consolidated_metadata"]
    (path / "zarr.json").write_text(json.dumps(root))
    assert verify_cache(path).ok  # none is never stale
    assert repair_cache(path).consolidated_now
    assert "consolidated_metadata" in json.loads((path / "zarr.json").read_text())


def _plant_pickle_in_consolidated(path: Path, marker: Path) -> None:
    """The root's consolidated copy of ``set0/value`` asks for the pickle codec and its chunk
    holds a live payload; the array's own zarr.json stays as written."""
    import pickle

    root = json.loads((path / "zarr.json").read_text())
    entry = root["consolidated_metadata"]["metadata"]["set0/value"]
    entry["data_type"] = "float64"
    entry["codecs"] = [{"name": "numcodecs.pickle", "configuration": {"protocol": 5}}]
    (path / "zarr.json").write_text(json.dumps(root))
    (path / "set0" / "value" / "c" / "0").write_bytes(pickle.dumps(OpenFile(marker)))


def test_hostile_consolidated_metadata_is_refused_remotely_and_ignored_locally(
    s3_server, tmp_path
) -> None:
    so = s3_server.storage_options
    marker = tmp_path / "ran"
    path = _tree(tmp_path, 1)
    values = actstore.open(path, group="set0")["value"].values
    _plant_pickle_in_consolidated(path, marker)
    fs = _fs(s3_server)
    fs.put(str(path), "caches/hostile.zarr", recursive=True)
    with pytest.raises(UnsafeCacheError, match=r"numcodecs\.pickle"):
        actstore.open("s3://caches/hostile.zarr", storage_options=so)
    assert not marker.exists()
    # read file by file (a local cache, or `actstore verify`): zarr never sees the planted copy,
    # so the value array decodes from its own metadata: the chunk planted there is damage
    ds = actstore.open(path, group="set0")
    assert ds["value"].dtype == values.dtype
    with pytest.raises(CorruptCacheError):
        ds["value"].values
    assert not marker.exists()
    assert any(p.key == "set0/value/c/0" for p in verify_cache(path).problems)
    assert not marker.exists()


def test_copy_to_and_from_s3_with_progress(s3_server, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("ACTSTORE_PROGRESS_INTERVAL", "0")
    so = s3_server.storage_options
    local = _tree(tmp_path, 2)
    url = "s3://caches/copied.zarr"
    with show_progress("log"):
        copy_cache(local, url, dst_storage_options=so)
        up = capsys.readouterr().err
        copy_cache(url, tmp_path / "back.zarr", storage_options=so, prompt_sets=["set1"])
        down = capsys.readouterr().err
    assert "actstore copy set0: 2/2 blocks" in up and "actstore copy set1: 2/2 blocks" in up
    assert "actstore copy set1: 2/2 blocks" in down and "set0" not in down
    # written by actstore on S3: consolidated, so the open is fast and equal to the source
    assert _count(s3_server, lambda: actstore.open(url, storage_options=so)) <= 10
    back = actstore.open(tmp_path / "back.zarr", group="set1", decode_bfloat16=False)
    np.testing.assert_array_equal(
        back["resid_post"].values.view(np.uint16),
        make_synthetic(seed=1, n_prompts=8, block_size=4).activations["resid_post"].view(np.uint16),
    )


def test_repair_command_takes_storage_options_for_a_remote_cache(s3_server, tmp_path) -> None:
    """`actstore repair s3://... --storage-options JSON` (breaker13: repair had no way to name an
    endpoint or credentials, while its message advised --storage-options)."""
    so = s3_server.storage_options
    url = _upload(s3_server, _tree(tmp_path, 1), "repair_cli.zarr")
    fs = _fs(s3_server)
    key = url[len("s3://") :] + "/zarr.json"
    root = json.loads(fs.cat(key))
    root["consolidated_metadata"]["metadata"]["set0/value"]["attributes"] = {"stale": True}
    fs.pipe(key, json.dumps(root).encode())
    assert [p.kind for p in verify_cache(url, storage_options=so).problems] == ["consolidated"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    cmd = [sys.executable, "-m", "actstore", "repair", url, "--quiet", "--storage-options"]
    # without skip_instance_cache, whose extra s3fs instance leaves an "Unclosed client session"
    # warning on stderr at exit (every command; reported to the lead)
    cli_so = {k: v for k, v in so.items() if k != "skip_instance_cache"}
    proc = subprocess.run([*cmd, json.dumps(cli_so)], env=env, cwd=ROOT, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stderr == b""
    assert verify_cache(url, storage_options=so).ok
    bad = subprocess.run([*cmd, "{bad"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.startswith("actstore: error: expected --storage-options as a JSON object")
    assert bad.stderr.count("\n") == 1
