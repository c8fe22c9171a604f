"""A cache is data, never code: hostile metadata is refused before any chunk is read.

Each test plants something into a copy of a small clean cache: a codec or data type outside the
allow-list, Zarr v2 metadata whose object codec would unpickle, a chunk holding a live pickle
payload, sizes meant to exhaust memory. Every public way in (``actstore.open``, ``open_cache``,
``cache_info``, ``verify_cache``, ``copy_cache``, ``actstore info``) must refuse with an
:class:`UnsafeCacheError` naming the array and what was refused, and the payload must never run.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import actstore
from actstore.errors import ActstoreError, CorruptCacheError, UnsafeCacheError
from actstore.store import cache_info, copy_cache, open_cache, verify_cache
from actstore.store.format._safety import (
    ALLOWED_CODECS,
    MAX_METADATA_BYTES,
    check_key,
)
from tests.reliability._hostile import (
    OpenFile,
    edit_meta,
    pickle_payload,
    plant_array,
    read_meta,
    v2_pickle_array,
    v3_array,
)

ENTRY_POINTS: dict[str, Callable[[Path], Any]] = {
    "actstore.open": lambda p: actstore.open(p),
    "actstore.open(set)": lambda p: actstore.open(p, "arith"),
    "open_cache": lambda p: open_cache(p),
    "open_cache(r+)": lambda p: open_cache(p, mode="r+"),
    "cache_info": lambda p: cache_info(p),
    "verify_cache": lambda p: verify_cache(p),
    "copy_cache": lambda p: copy_cache(p, p.parent / "copy.zarr"),
}


def _refused_everywhere(path: Path, *fragments: str) -> None:
    for name, call in ENTRY_POINTS.items():
        with pytest.raises(UnsafeCacheError) as info:
            call(path)
        for fragment in fragments:
            assert fragment in str(info.value), (name, str(info.value))
    assert not (path.parent / "copy.zarr").exists()


def test_pickle_codec_in_activations_is_refused(cache_copy: Path) -> None:
    meta_path = cache_copy / "arith" / "resid_post" / "zarr.json"
    doc = read_meta(meta_path)
    doc["codecs"][0]["configuration"]["codecs"].insert(1, {"name": "numcodecs.pickle"})
    meta_path.write_text(json.dumps(doc))
    _refused_everywhere(cache_copy, "'arith/resid_post'", '"numcodecs.pickle"')


def test_planted_pickle_payload_never_runs(cache_copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle_payload(marker)
    doc = v3_array([1], codecs=[{"name": "numcodecs.pickle"}, {"name": "bytes"}], dims=["prompt"])
    plant_array(cache_copy / "arith", "evil", doc, {"c/0": payload})
    plant_array(cache_copy / "probes", "evil", doc, {"c/0": payload})
    _refused_everywhere(cache_copy, "evil", "numcodecs.pickle")
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: unpickling it is exactly what must not happen
    assert marker.exists()


@pytest.mark.parametrize(
    "data_type",
    ["object", {"name": "object"}, "|O", "complex128", "r16", {"name": "numcodecs.pickle"}],
)
def test_data_types_outside_the_allow_list_are_refused(cache_copy: Path, data_type: Any) -> None:
    plant_array(
        cache_copy / "arith", "odd", v3_array([9], data_type=data_type, dims=["prompt"]), {}
    )
    _refused_everywhere(cache_copy, "'arith/odd'", "data type")


@pytest.mark.parametrize("codec", ["blosc", "numcodecs.zlib", "numcodecs.astype", "pickle", ""])
def test_codecs_outside_the_allow_list_are_refused(cache_copy: Path, codec: str) -> None:
    assert codec not in ALLOWED_CODECS
    doc = v3_array([9], codecs=[{"name": "bytes"}, {"name": codec}], dims=["prompt"])
    plant_array(cache_copy / "probes" / "value", "odd", doc, {})
    with pytest.raises(UnsafeCacheError, match=f"'probes/value/odd'.*codec {json.dumps(codec)}"):
        actstore.open(cache_copy)


@pytest.mark.parametrize("where", ["arith/evil", "probes/evil", "evil"])
def test_zarr_v2_pickle_array_is_refused(cache_copy: Path, tmp_path: Path, where: str) -> None:
    marker = tmp_path / "pwned"
    v2_pickle_array(cache_copy / where, marker)
    _refused_everywhere(cache_copy, "Zarr v2")
    assert not marker.exists()


def test_v2_metadata_files_beside_v3_are_refused(cache_copy: Path) -> None:
    (cache_copy / "arith" / ".zattrs").write_text("{}")
    _refused_everywhere(cache_copy, "arith/.zattrs", "Zarr v2")


@pytest.mark.parametrize(
    "extra",
    [
        {"storage_transformers": [{"name": "anything"}]},
        {"must_run": {"must_understand": True}},
        {"chunk_grid": {"name": "rectilinear", "configuration": {}}},
    ],
)
def test_features_zarr_would_have_to_run_are_refused(cache_copy: Path, extra: dict) -> None:
    edit_meta(cache_copy / "arith" / "text" / "zarr.json", **extra)
    _refused_everywhere(cache_copy, "arith/text")


# -- sizes: bounded before anything is allocated -----------------------------------------------
def test_oversized_metadata_document_is_refused_unread(cache_copy: Path) -> None:
    meta = cache_copy / "arith" / "text" / "zarr.json"
    with open(meta, "r+b") as fh:  # sparse: the size is claimed, the bytes are never read
        fh.truncate(MAX_METADATA_BYTES + 1)
    _refused_everywhere(cache_copy, "arith/text/zarr.json", "bytes")


@pytest.mark.parametrize("depth", [70, 200_000])
def test_deeply_nested_attributes_are_refused(cache_copy: Path, depth: int) -> None:
    meta = cache_copy / "probes" / "value" / "coef" / "zarr.json"
    doc = read_meta(meta)
    doc["attributes"]["x"] = "NESTED"
    meta.write_text(json.dumps(doc).replace('"NESTED"', "[" * depth + "]" * depth))
    _refused_everywhere(cache_copy, "probes/value/coef", "nested")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"shape": [10**15], "chunks": [10**15]}, "bytes decoded"),
        ({"shape": [10**15], "chunks": [1000]}, "shards/chunks"),
        ({"shape": [10**15], "chunks": [2**29], "name": "k"}, "index coordinate"),
    ],
)
def test_claimed_sizes_over_the_bounds_are_refused(
    cache_copy: Path, change: dict, fragment: str
) -> None:
    name = change.get("name", "big")
    doc = v3_array(change["shape"], data_type="bool", chunks=change["chunks"], dims=["k"])
    plant_array(cache_copy / "probes" / "value", name, doc, {})
    with pytest.raises(UnsafeCacheError, match=fragment):
        actstore.open(cache_copy)


def test_spec_claiming_huge_prompt_set_is_refused(cache_copy: Path) -> None:
    meta = cache_copy / "arith" / "zarr.json"
    doc = read_meta(meta)
    doc["attributes"]["actstore"]["spec"]["n_prompts"] = 10**15
    meta.write_text(json.dumps(doc))
    _refused_everywhere(cache_copy, "arith/zarr.json", "n_prompts")


_MEMORY_PROBE = r"""
import json, resource, sys
import actstore
from actstore.errors import ActstoreError
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
out = []
for path, group in [(sys.argv[1], None), (sys.argv[1], "probes/value"), (sys.argv[2], None),
                    (sys.argv[2], "arith")]:
    try:
        obj = actstore.open(path, group)
        ds = obj if group else obj["probes/value"].to_dataset()
        out.append(["ok", list(ds["big"].shape)])
    except ActstoreError as exc:
        out.append([type(exc).__name__, str(exc)])
print(json.dumps(out))
"""


def test_huge_claims_are_not_allocated(cache_copy: Path, tmp_path: Path) -> None:
    """Under a 3 GiB address-space limit: 10^15 bool elements within every bound stay lazy;
    activations claiming 10^13 prompts (10^15 values) are refused before anything is allocated."""
    lazy = tmp_path / "lazy.zarr"
    shutil.copytree(cache_copy, lazy)
    doc = v3_array([10**15], data_type="bool", chunks=[2**29], dims=["k"])
    plant_array(lazy / "probes" / "value", "big", doc, {})
    edit_meta(cache_copy / "arith" / "resid_post" / "zarr.json", shape=[10**13, 3, 7, 16])
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(lazy), str(cache_copy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out[:2] == [["ok", [10**15]], ["ok", [10**15]]]
    for kind, message in out[2:]:
        assert kind == "UnsafeCacheError", out
        assert "arith/resid_post" in message and "shards/chunks" in message


# -- damaged (not hostile) metadata: named, never a raw exception -------------------------------
@pytest.mark.parametrize("key", ["zarr.json", "arith/zarr.json", "probes/zarr.json"])
def test_unreadable_group_metadata_is_named(cache_copy: Path, key: str) -> None:
    meta = cache_copy / key
    meta.write_text(meta.read_text()[:25])
    for call in (lambda p: actstore.open(p), open_cache, cache_info):
        with pytest.raises(CorruptCacheError, match=key.replace(".", r"\.")):
            call(cache_copy)


def test_damaged_array_metadata_blocks_only_its_own_prompt_set(cache_copy: Path) -> None:
    meta = cache_copy / "arith" / "token_id" / "zarr.json"
    meta.write_text(meta.read_text()[:-20])
    with pytest.raises(CorruptCacheError, match=r"arith/token_id/zarr\.json"):
        actstore.open(cache_copy, "arith")
    assert actstore.open(cache_copy, "probes/value")["coef"].shape == (3, 16)
    report = verify_cache(cache_copy)
    assert [(p.kind, p.key) for p in report.problems] == [("metadata", "arith/token_id/zarr.json")]


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        (["spec", "layers"], None, ["a", 1]),
        (["spec", "d_model"], None, 15),
        (["layout", "n_blocks"], None, 7),
        (["spec", "dtype"], None, "float32"),
        (["ready"], None, "yes"),
    ],
)
def test_spec_contradicting_arrays_is_named(cache_copy: Path, path, field, value) -> None:
    meta = cache_copy / "arith" / "zarr.json"
    doc = read_meta(meta)
    node = doc["attributes"]["actstore"]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    meta.write_text(json.dumps(doc))
    for call in (
        lambda p: actstore.open(p, "arith"),
        cache_info,
        lambda p: open_cache(p).spec("arith"),
    ):
        with pytest.raises(CorruptCacheError, match=r"arith/zarr\.json"):
            call(cache_copy)
    report = verify_cache(cache_copy)  # verify lists it instead of stopping
    assert [(p.kind, p.key) for p in report.problems] == [("metadata", "arith/zarr.json")]


def test_error_classes() -> None:
    assert issubclass(UnsafeCacheError, ActstoreError) and issubclass(UnsafeCacheError, ValueError)


@pytest.mark.parametrize(
    "key",
    ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a\\..\\b", "C:/x", "a/\x00", "", "a/."],
)
def test_check_key_refuses_paths_leaving_the_cache(key: str) -> None:
    with pytest.raises(UnsafeCacheError):
        check_key(key)


@pytest.mark.parametrize("key", ["zarr.json", "probes/value/coef/c/0/0", "a.b/..c/d..e"])
def test_check_key_accepts_plain_keys(key: str) -> None:
    assert check_key(key) == key


# -- saved probes: never unpickled ----------------------------------------------------------------
def _standalone_probes(tmp_path: Path) -> Path:
    from actstore.analysis import fit_probes, save_probes

    probes = fit_probes(str(tmp_path / "cache.zarr"), prompt_set="arith", target="value", cv=3)
    return Path(save_probes(probes, tmp_path / "probes.zarr"))


def test_standalone_probe_zarr_with_pickle_codec_is_refused(cache_copy: Path) -> None:
    from actstore.analysis import load_probes

    path = _standalone_probes(cache_copy.parent)
    load_probes(str(path))  # loads while clean
    meta = next(p for p in path.rglob("zarr.json") if read_meta(p)["node_type"] == "array")
    doc = read_meta(meta)
    doc["codecs"].append({"name": "numcodecs.pickle"})
    meta.write_text(json.dumps(doc))
    with pytest.raises(UnsafeCacheError, match=r"numcodecs\.pickle"):
        load_probes(str(path))


def test_standalone_v2_probe_zarr_is_refused(tmp_path: Path) -> None:
    from actstore.analysis import load_probes

    marker = tmp_path / "pwned"
    root = tmp_path / "probes.zarr"
    root.mkdir()
    (root / ".zgroup").write_text('{"zarr_format": 2}')
    (root / ".zattrs").write_text('{"actstore_probe": {}}')
    v2_pickle_array(root / "coef", marker)
    with pytest.raises(UnsafeCacheError, match="Zarr v2"):
        load_probes(str(root))
    assert not marker.exists()


def test_npz_with_object_array_is_refused(tmp_path: Path) -> None:
    import numpy as np

    from actstore.analysis import load_probes

    np.savez(tmp_path / "p.npz", **{"var/coef": np.array([OpenFile(tmp_path / "pwned")])})
    (tmp_path / "p.json").write_text(
        json.dumps({"format": "actstore-probes-npz/1", "dims": {"coef": ["x"]}, "lineage": {}})
    )
    with pytest.raises(UnsafeCacheError, match="object array"):
        load_probes(tmp_path / "p.npz")
    assert not (tmp_path / "pwned").exists()
