"""The probe-fit fast path: the light shard reader and ``fit_probes`` from materialised positions
of a local cache without zarr, xarray or dask.

References: zarr-python's read of the same arrays (bit for bit, every dtype and codec the store
writes), and the general path's fit of the same cache (a ``Cache`` object, which the fast path
never takes), compared bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from actstore.analysis import fit_probes
from actstore.analysis._light import SCHEMA_VERSION, light_set
from actstore.errors import CorruptCacheError, SampleLossWarning
from actstore.store import SCHEMA_VERSION as STORE_SCHEMA_VERSION
from actstore.store import materialize_positions, open_cache
from actstore.store.format._shardread import Unsupported, read_array, read_json
from tests._fixtures.store import make_synthetic, write_synthetic


def _cache(tmp_path: Path, dtype: str = "bfloat16", codec: str | None = None, positions="last"):
    syn = make_synthetic(n_prompts=40, d_model=8, dtype=dtype, block_size=7)
    if codec is not None:
        syn = dataclasses.replace(syn, spec=dataclasses.replace(syn.spec, codec=codec))
    url = tmp_path / f"{dtype}-{codec}.zarr"
    write_synthetic(url, syn)
    if positions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SampleLossWarning)
            materialize_positions(open_cache(url, mode="r+"), "arith", positions)
    return url


def _fit(cache, position="last", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleLossWarning)
        return fit_probes(cache, prompt_set="arith", target="value", position=position, cv=3, **kw)


def _light(url: Path, position: str = "last"):
    return light_set(
        url, "arith", hook="resid_post", position=position, target="value", layers=None
    )


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("codec", [None, "none", "zstd:3"])
def test_reader_matches_zarr_bit_for_bit(tmp_path, dtype, codec):
    """Every array of the prompt set the reader handles reads as zarr-python reads it; the rest
    (strings) are refused as Unsupported, never misread."""
    url = _cache(tmp_path, dtype, codec, positions="last,before:operands")
    import actstore  # noqa: F401  (bfloat16 for zarr-python)

    read, refused = [], []
    for meta_path in sorted((url / "arith").rglob("zarr.json")):
        meta = json.loads(meta_path.read_text())
        if meta.get("node_type") != "array":
            continue
        rel = meta_path.parent.relative_to(url).as_posix()
        expect = zarr.open_array(str(url), path=rel, mode="r")[...]
        try:
            got = read_array(str(meta_path.parent), read_json(str(meta_path)), where=str(url))
        except Unsupported:
            refused.append(rel)
            assert expect.dtype.kind in "OUT", rel  # only strings are left to zarr
            continue
        read.append(rel)
        assert got.dtype == expect.dtype and got.shape == expect.shape, rel
        assert got.tobytes() == expect.tobytes(), rel
    assert {"arith/resid_post", "arith/positions/resid_post", "arith/n_tokens"} <= set(read)
    assert "arith/positions/token_index" in read and "arith/value" in read
    assert refused  # e.g. text, token_str: strings


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("position", ["last", "before:operands"])
@pytest.mark.parametrize("control", ["shuffle", "none"])
def test_fast_path_is_bit_identical_to_the_general_path(tmp_path, dtype, position, control):
    url = _cache(tmp_path, dtype, positions="last,before:operands")
    assert _light(url, position) is not None  # the fast path applies
    fast = _fit(str(url), position, control=control)
    general = _fit(open_cache(url), position, control=control)  # a Cache: never the fast path
    a, b = fast.dataset, general.dataset
    assert set(a.data_vars) == set(b.data_vars) and list(a.coords) == list(b.coords)
    for v in list(a.data_vars) + list(a.coords):
        assert a[v].dims == b[v].dims, v
        assert a[v].values.tobytes() == b[v].values.tobytes(), v
    la, lb = dict(fast.lineage), dict(general.lineage)
    la.pop("created"), lb.pop("created")
    assert la == lb
    assert fast.metrics() == general.metrics()


def test_fast_path_warns_as_the_general_path(tmp_path):
    url = _cache(tmp_path, positions="before:operands")
    with pytest.warns(SampleLossWarning) as fast:
        fit_probes(url, prompt_set="arith", target="value", position="before:operands", cv=3)
    with pytest.warns(SampleLossWarning) as general:
        fit_probes(open_cache(url), prompt_set="arith", target="value", position="before:operands")
    assert [str(w.message) for w in fast] == [str(w.message) for w in general]


def test_other_cases_take_the_general_path(tmp_path):
    url = _cache(tmp_path)
    assert _light(url, "last") is not None
    assert _light(url, "before:operands") is None  # not materialised
    assert _light(url, "all") is None
    assert light_set(url, "arith", hook="resid_post", position="last", target="nope",
                     layers=None) is None  # fmt: skip
    assert light_set(url, "arith", hook="resid_post", position="last", target="value",
                     layers=[99]) is None  # fmt: skip
    assert light_set(f"file://{url}.zip", "arith", hook="resid_post", position="last",
                     target="value", layers=None) is None  # fmt: skip
    # an incomplete positions group (a killed run) is ignored
    meta_path = url / "arith" / "positions" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["actstore"]["complete"] = False
    meta_path.write_text(json.dumps(meta))
    assert _light(url, "last") is None
    # a missing block marker: the general path refuses the incomplete set
    url2 = _cache(tmp_path / "b")
    next((url2 / "arith" / "_blocks_done" / "c").iterdir()).unlink()
    assert _light(url2, "last") is None


def _positions_chunk(url: Path) -> Path:
    return next(p for p in (url / "arith" / "positions" / "resid_post").rglob("c/*/*/*/*"))


@pytest.mark.parametrize(
    "damage",
    ["flip a byte", "truncate", "delete the shard", "inflate the zstd size"],
)
def test_a_damaged_positions_chunk_is_refused_on_the_fast_path(tmp_path, damage):
    url = _cache(tmp_path)
    chunk = _positions_chunk(url)
    data = bytearray(chunk.read_bytes())
    if damage == "flip a byte":
        data[len(data) // 3] ^= 0xFF
        chunk.write_bytes(bytes(data))
    elif damage == "truncate":
        chunk.write_bytes(bytes(data[:-7]))
    elif damage == "delete the shard":
        chunk.unlink()
    else:  # a zstd frame claiming a huge decoded size, with a valid checksum: no bomb, refused
        from google_crc32c import value as crc32c

        raw = bytes(data)
        meta = read_json(str(chunk.parents[4] / "zarr.json"))
        n_in = int(np.prod([s // i for s, i in zip(
            meta["chunk_grid"]["configuration"]["chunk_shape"],
            meta["codecs"][0]["configuration"]["chunk_shape"], strict=True)]))  # fmt: skip
        index = np.frombuffer(raw[-(16 * n_in + 4) : -4], dtype="<u8").reshape(n_in, 2)
        off, nb = (int(v) for v in index[index[:, 0] != 2**64 - 1][0])
        body = bytearray(raw[off : off + nb - 4])
        assert body[:4] == b"\x28\xb5\x2f\xfd"
        fhd = body[4]
        size_len = (1 if (fhd >> 5) & 1 else 0, 2, 4, 8)[fhd >> 6]
        pos = 5 + (0 if (fhd >> 5) & 1 else 1) + (0, 1, 2, 4)[fhd & 3]
        assert size_len > 0  # the writer declares the size; claim the largest instead
        body[pos : pos + size_len] = b"\xff" * size_len
        new = bytes(body) + int(crc32c(bytes(body))).to_bytes(4, "little")
        chunk.write_bytes(raw[:off] + new + raw[off + nb :])
    found = _light(url, "last")  # the rows are read by the fit, not by the planning
    with pytest.raises(CorruptCacheError, match="actstore repair"):
        list(found.batches(np.arange(len(found.layers)), found.select(np.arange(40))[0]))
    with pytest.raises(CorruptCacheError, match="actstore verify"):
        _fit(str(url))


def test_constants_agree_with_the_store_and_classify():
    from actstore.analysis._classify import KINDS
    from actstore.analysis._probes import _KINDS

    assert SCHEMA_VERSION == STORE_SCHEMA_VERSION
    assert _KINDS == KINDS


def test_fit_from_materialised_positions_imports_no_zarr_xarray_dask(tmp_path):
    """The fast path's promise, in a fresh interpreter; the same numbers as here."""
    url = _cache(tmp_path)
    code = (
        "import sys, json\nfrom actstore.analysis import fit_probes\n"
        "p = fit_probes(sys.argv[1], prompt_set='arith', target='value', cv=3, alphas=[1.0])\n"
        "print(json.dumps([m['cv_r2'] for m in p.metrics()]))\n"
        "heavy = ('zarr', 'xarray', 'dask', 'pandas', 'scipy', 'sklearn', 'distributed')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(url)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[-1] == ""
    here = _fit(open_cache(url), alphas=[1.0])
    assert json.loads(out[0]) == [m["cv_r2"] for m in here.metrics()]


def test_import_actstore_registers_bfloat16_when_zarr_comes_later(tmp_path):
    """``import actstore`` no longer imports zarr, yet plain zarr reads bfloat16 afterwards."""
    url = _cache(tmp_path, positions="")
    code = (
        "import sys\nimport actstore\nassert 'zarr' not in sys.modules\n"
        "import zarr\na = zarr.open_array(sys.argv[1], path='arith/resid_post', mode='r')\n"
        "print(a.dtype, a[0, 0, 0, :2].astype('float32').tolist())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(url)], capture_output=True, text=True, check=True
    ).stdout.strip()
    expect = zarr.open_array(str(url), path="arith/resid_post", mode="r")[0, 0, 0, :2]
    assert out == f"bfloat16 {expect.astype(np.float32).tolist()}"


@pytest.mark.parametrize("damage", ["flip a byte", "delete the shard"])
def test_a_damaged_positions_chunk_is_refused_on_the_general_path(tmp_path, damage):
    """The sibling: through zarr (a ``Cache`` object) a damaged chunk was a bare ValueError from
    deep inside dask, and a deleted shard read as zeros; both are CorruptCacheError now."""
    url = _cache(tmp_path)
    chunk = _positions_chunk(url)
    if damage == "delete the shard":
        chunk.unlink()
    else:
        data = bytearray(chunk.read_bytes())
        data[len(data) // 3] ^= 0xFF
        chunk.write_bytes(bytes(data))
    with pytest.raises(CorruptCacheError, match="actstore repair"):
        _fit(open_cache(url))


@pytest.mark.parametrize("rows", [(0, 40), (3, 17), (7, 14), (35, 40), (20, 20)])
def test_reader_reads_a_prompt_range_as_zarr_slices_it(tmp_path, rows):
    url = _cache(tmp_path, positions="last,before:operands")
    import actstore  # noqa: F401  (bfloat16 for zarr-python)

    for rel in ("arith/resid_post", "arith/positions/resid_post", "arith/n_tokens"):
        path = url / rel
        got = read_array(str(path), read_json(str(path / "zarr.json")), where=str(url), rows=rows)
        expect = zarr.open_array(str(url), path=rel, mode="r")[rows[0] : rows[1]]
        assert got.shape == expect.shape and got.tobytes() == expect.tobytes(), rel


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_batches_cut_where_the_general_path_cuts(tmp_path, monkeypatch, solver):
    """Several batches (small TASK_BYTES): the light reader streams them with the dask reader's
    bounds, so the primal solver's merged moments are bit-identical too."""
    from actstore.analysis import _bounds

    url = _cache(tmp_path, positions="last")
    monkeypatch.setattr(_bounds, "TASK_BYTES", 7 * 8 * 2)  # one inner chunk of 7 prompts
    found = _light(url)
    prompt, _ = found.select(np.arange(40))
    parts = list(found.batches(np.arange(len(found.layers)), prompt))
    assert len(parts) > 3 and parts[-1][0].stop == len(prompt)
    rows = np.concatenate([r for _, r in parts])
    group = open_cache(url).group("arith")["positions"]
    expect = group["resid_post"][...][prompt][:, :, 0, :].astype(np.float32)
    assert rows.tobytes() == expect.tobytes()
    fast = _fit(str(url), solver=solver)
    general = _fit(open_cache(url), solver=solver)
    for v in fast.dataset.data_vars:
        assert fast.dataset[v].values.tobytes() == general.dataset[v].values.tobytes(), v


@pytest.mark.parametrize("edit", ["pickle codec", "deep json", "huge shape"])
def test_hostile_metadata_is_left_to_the_general_path(tmp_path, edit):
    """What the light reader does not handle (or distrusts) goes to the general path, whose
    safety scan refuses it: the fast path never reads past a check the general path makes."""
    from actstore.errors import ActstoreError

    url = _cache(tmp_path)
    meta_path = url / "arith" / "positions" / "resid_post" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    if edit == "pickle codec":
        meta["codecs"][0]["configuration"]["codecs"].insert(1, {"name": "numcodecs.pickle"})
    elif edit == "deep json":
        deep: dict = {}
        for _ in range(200):
            deep = {"a": deep}
        meta["attributes"]["deep"] = deep
    else:
        meta["shape"][0] = 2**40
    meta_path.write_text(json.dumps(meta))
    assert _light(url) is None
    with pytest.raises(ActstoreError):
        _fit(str(url))


def test_version_is_the_installed_metadata():
    """``actstore.__version__`` is read from the dist-info without importlib.metadata; the same
    answer as importlib.metadata's (when installed)."""
    from importlib import metadata

    import actstore

    try:
        expect = metadata.version("actstore")
    except metadata.PackageNotFoundError:
        expect = "0.0.0+unknown"
    assert actstore.__version__ == expect


def test_light_reader_imports_neither_importlib_metadata_nor_numcodecs(tmp_path):
    """What makes the light path light: its zstd and crc32c come from zstandard and
    google_crc32c, which import in about a millisecond (numcodecs and crc32c import
    importlib.metadata, ~25 ms each time a process starts)."""
    url = _cache(tmp_path)
    code = (
        "import sys\nfrom actstore.analysis import fit_probes\n"
        "fit_probes(sys.argv[1], prompt_set='arith', target='value', cv=3, alphas=[1.0])\n"
        "print(','.join(m for m in ('importlib.metadata', 'numcodecs', 'crc32c', 'argparse')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(url)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[-1] == ""


def test_numpy_only_helpers_agree_with_numpy():
    """The light path's replacements of np.setdiff1d / np.unique (which import numpy.ma)."""
    from actstore.analysis._bounds import prompt_bounds
    from actstore.analysis._data import _left_out

    rng = np.random.default_rng(0)
    for _ in range(300):
        cand = np.unique(rng.integers(0, 50, rng.integers(0, 40)))
        sel = np.sort(rng.integers(0, 60, rng.integers(0, 40)))
        assert _left_out(cand, sel).tolist() == np.setdiff1d(cand, sel).tolist()
        shape = (60, 3, int(rng.integers(1, 5)), 8)
        distinct = len(np.unique(sel))
        per = max(1.0, len(sel) / max(1, distinct))
        step = max(1, min(4 * 2**20 // (shape[2] * 16), int(16 * 2**20 // (per * 3 * 32))))
        step = max(5, step - step % 5)
        expect = np.append(np.arange(0, 60, step), 60)
        assert prompt_bounds(shape, 2, sel, 3, 5).tolist() == expect.tolist()


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_missing_activation_shard_refuses_the_fit_as_before(tmp_path, damage):
    """The light path reads only the positions, yet a recorded block whose activation shard is
    gone still refuses the fit, as the general path's open does (nothing silently ignored)."""
    from actstore.errors import ActstoreError

    url = _cache(tmp_path)
    shard = next(p for p in (url / "arith" / "resid_post" / "c").rglob("*") if p.is_file())
    if damage == "delete":
        shard.unlink()
    else:
        shard.write_bytes(shard.read_bytes()[:10])
    assert _light(url) is None
    with pytest.raises(ActstoreError, match="actstore repair"):
        _fit(str(url))
