"""Fixtures of the hostile-input tests (tests/reliability/test_hostile*.py): a clean small cache
built once per module and a fresh copy of it per test, to plant hostile metadata into."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def clean_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small complete cache (bfloat16 set ``arith``, a saved probe group), once per session."""
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


@pytest.fixture(scope="session")
def catalogue_env(
    clean_cache: Path, tiny_qwen2_dir: Path, tiny_model_factory, tmp_path_factory
) -> Path:
    """The work directory of the bad-input catalogue (files described in
    ``tests/reliability/_catalogue.py``), built once per test session."""
    import json

    import zarr

    from actstore.prompts import Prompt, PromptSet, generate
    from actstore.store import copy_cache

    work = tmp_path_factory.mktemp("catalogue")
    shutil.copytree(clean_cache, work / "cache.zarr")
    copy_cache(work / "cache.zarr", work / "cache.zip")
    for name in ("future", "hostile", "damaged", "linked", "nan_probe"):
        shutil.copytree(clean_cache, work / f"{name}.zarr")
    root = work / "future.zarr" / "zarr.json"
    doc = json.loads(root.read_text())
    doc["attributes"]["actstore"]["schema_version"] = 99
    root.write_text(json.dumps(doc))
    meta = work / "hostile.zarr" / "arith" / "resid_post" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["codecs"][0]["configuration"]["codecs"].insert(1, {"name": "numcodecs.pickle"})
    meta.write_text(json.dumps(doc))
    meta = work / "damaged.zarr" / "arith" / "zarr.json"
    meta.write_text(meta.read_text()[:100])
    (work / "secret.txt").write_text("not part of any cache")
    chunk = work / "linked.zarr" / "probes" / "value" / "coef" / "c" / "0" / "0"
    chunk.unlink()
    chunk.symlink_to("../secret.txt")
    (work / "notacache").mkdir()
    (work / "notacache" / "notes.txt").write_text("hello")
    zarr.open_group(str(work / "plain.zarr"), mode="w", zarr_format=3).attrs["owner"] = "x"

    good = generate("multiplication", 6, seed=0, name="good")
    good.to_jsonl(work / "good.jsonl")
    generate("multiplication", 6, seed=1, name="other").to_jsonl(work / "other.jsonl")
    (work / "empty.jsonl").write_text("\n")
    (work / "bad.jsonl").write_text('{"text": "1 times 2 equals 2"}\n{"value": 3}\n')
    long = PromptSet(name="long", prompts=(Prompt(text=" ".join(["word"] * 200)),))
    long.to_jsonl(work / "long.jsonl")

    (work / "model").symlink_to(tiny_qwen2_dir)
    (work / "model2").symlink_to(tiny_model_factory("qwen2", seed=1))
    (work / "short_model").symlink_to(tiny_model_factory("qwen2", max_position=16))
    from actstore.extractors import extract

    extract(
        model=work / "model",
        prompts=good,
        out=work / "tiny.zarr",
        layers="0,1",
        device="cpu",
        dtype="float32",
        block_size=2,
    )  # fmt: skip  (3 blocks, batched in one window of 3)
    _probe_files(work)
    (work / "typo.toml").write_text(
        'name = "study"\n[[prompt_sets]]\nname = "arith"\n[[prompt_sets.sources]]\n'
        'generator = "multiplication"\nn = 20\n[extract]\nlayer = "all"\n'
    )
    return work


def _probe_files(work: Path) -> None:
    """``nan_probe.zarr`` (label value all NaN), ``probes_other.npz`` (another model's probes),
    ``object.npz`` (a pickled object array beside valid metadata)."""
    import json

    import numpy as np
    import zarr

    from actstore.analysis import fit_probes, save_probes

    arr = zarr.open_array(str(work / "nan_probe.zarr" / "arith" / "value"), mode="r+")
    arr[:] = np.nan
    probes = fit_probes(str(work / "cache.zarr"), prompt_set="arith", target="value", cv=3)
    save_probes(probes, work / "probes_other.npz")
    meta_path = work / "probes_other.json"
    meta = json.loads(meta_path.read_text())
    meta["lineage"]["model_fingerprint"] = "sha256:another-model"
    meta_path.write_text(json.dumps(meta))
    np.savez(work / "object.npz", **{"var/coef": np.array([{"a": 1}, None], dtype=object)})
    meta["dims"] = {"coef": ["layer"]}
    (work / "object.json").write_text(json.dumps(meta))
