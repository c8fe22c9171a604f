"""``actstore export``: both formats read back equal to the written arrays, real tokens only.

The reference is the numpy arrays the synthetic cache was written from, masked by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actstore.errors import InvalidArgumentError, UnknownNameError
from actstore.store import export_cache
from tests._fixtures.store import make_synthetic, write_synthetic

HERE = Path(__file__).parent


def _real(syn, hook="resid_post"):
    """(rows (token, layer, d_model) float32, prompt, token) of every real token, in order."""
    acts = syn.activations[hook].astype(np.float32)
    nt = np.asarray(syn.metadata.n_tokens)
    mask = np.arange(acts.shape[2])[None, :] < nt[:, None]
    prompt, token = np.nonzero(mask)
    return acts.transpose(0, 2, 1, 3)[mask], prompt, token


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    """A bfloat16 set with two hooks and a float16 set, in one cache."""
    base = tmp_path_factory.mktemp("export")
    a = make_synthetic(n_prompts=19, hooks=("resid_post", "resid_mid"), block_size=4, seed=1)
    b = make_synthetic(n_prompts=11, dtype="float16", layers=(0, 2), block_size=3, seed=2)
    path = base / "c.zarr"
    write_synthetic(path, a, name="arith")
    write_synthetic(path, b, name="physics")
    return path, {"arith": a, "physics": b}


def test_npy_reads_back_equal(two_sets, tmp_path) -> None:
    path, syns = two_sets
    report = export_cache(path, tmp_path / "out", format="npy")
    assert set(report.prompt_sets) == {"arith", "physics"}
    for name, syn in syns.items():
        d = tmp_path / "out" / name
        meta = json.loads((d / "meta.json").read_text())
        assert meta["dtype"] == ("float16" if name == "physics" else "float32")
        for hook in syn.spec.hooks:
            rows, prompt, token = _real(syn, hook)
            for j, layer in enumerate(syn.spec.layers):
                got = np.load(d / f"{hook}.layer{layer}.npy", mmap_mode="r")
                assert got.shape == (len(rows), syn.spec.d_model)
                np.testing.assert_array_equal(np.asarray(got, dtype=np.float32), rows[:, j])
            np.testing.assert_array_equal(np.load(d / "prompt.npy"), prompt)
            np.testing.assert_array_equal(np.load(d / "token.npy"), token)
            np.testing.assert_array_equal(
                np.load(d / "token_id.npy"), syn.metadata.token_id[prompt, token]
            )


def test_hf_datasets_reads_back_equal(two_sets, tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    path, syns = two_sets
    syn = syns["arith"]
    rows, prompt, token = _real(syn)
    ctx = next(c for c in (6, 5, 7, 4) if len(rows) % c)  # leave some tokens over
    n_rows = len(rows) // ctx
    with pytest.warns(UserWarning, match=f"{len(rows) - n_rows * ctx} of {len(rows)} real"):
        report = export_cache(
            path,
            tmp_path / "out",
            format="hf-datasets",
            prompt_sets=["arith"],
            layers=[4, 1],
            hooks=["resid_post"],
            context_size=ctx,
        )
    assert report.prompt_sets["arith"]["rows"] == n_rows
    ds = datasets.load_from_disk(str(tmp_path / "out" / "arith"))
    assert sorted(ds.column_names) == sorted(
        ["blocks.4.hook_resid_post", "blocks.1.hook_resid_post", "token_ids", "prompt", "token"]
    )
    feat = ds.features["blocks.4.hook_resid_post"]
    assert isinstance(feat, datasets.Array2D) and feat.shape == (ctx, syn.spec.d_model)
    assert feat.dtype == "float32"
    assert len(ds) == n_rows
    cols = ds.with_format("numpy")[:]
    used = slice(0, n_rows * ctx)
    for j, layer in ((1, 4), (0, 1)):
        got = cols[f"blocks.{layer}.hook_resid_post"].reshape(-1, syn.spec.d_model)
        np.testing.assert_array_equal(got, rows[used, j])
    np.testing.assert_array_equal(cols["prompt"].reshape(-1), prompt[used])
    np.testing.assert_array_equal(cols["token"].reshape(-1), token[used])
    np.testing.assert_array_equal(
        cols["token_ids"].reshape(-1), syn.metadata.token_id[prompt, token][used]
    )
    assert not (tmp_path / "out" / "arith" / ".tmp_shards").exists()


def test_hf_datasets_many_shards(tmp_path, monkeypatch) -> None:
    """Steps smaller than the data: rows span step boundaries and several arrow files."""
    datasets = pytest.importorskip("datasets")
    import actstore.store.ops._export as ex

    syn = make_synthetic(n_prompts=30, block_size=2, seed=4)
    write_synthetic(tmp_path / "c.zarr", syn)
    monkeypatch.setattr(ex, "_STEP_BYTES", 20 * 3 * 16 * 2)  # ~20 tokens per step
    ctx = 7
    with pytest.warns(UserWarning, match="left out"):
        export_cache(tmp_path / "c.zarr", tmp_path / "o", format="hf-datasets", context_size=ctx)
    files = sorted(p.name for p in (tmp_path / "o" / "arith").glob("*.arrow"))
    assert len(files) > 3 and files[0] == f"data-00000-of-{len(files):05d}.arrow"
    ds = datasets.load_from_disk(str(tmp_path / "o" / "arith")).with_format("numpy")
    rows, _, _ = _real(syn)
    got = ds[:]["blocks.6.hook_resid_post"].reshape(-1, 16)
    np.testing.assert_array_equal(got, rows[: len(got), 2])
    assert len(got) == len(rows) // ctx * ctx


def _saelens_python() -> str | None:
    env = os.environ.get("ACTSTORE_SAELENS_PYTHON")
    if env:
        return env
    try:
        import sae_lens  # noqa: F401
    except ImportError:
        return None
    return sys.executable


def test_saelens_own_reader_accepts_the_export(two_sets, tmp_path) -> None:
    """SAELens's ActivationsStore reads the folder as its cached activations.

    sae-lens needs transformer-lens<4 while actstore's tlens backend uses 4.x, so it cannot share
    the project's environment: point ACTSTORE_SAELENS_PYTHON at an interpreter of a separate
    environment where it imports (docs/export.md shows how). Without one the test is skipped.
    """
    python = _saelens_python()
    if python is None:
        pytest.skip("sae-lens is not importable here and ACTSTORE_SAELENS_PYTHON is not set")
    pytest.importorskip("datasets")
    path, syns = two_sets
    syn = syns["arith"]
    ctx = 5
    export_cache(
        path, tmp_path / "out", format="hf-datasets", prompt_sets=["arith"], context_size=ctx
    )
    rows, prompt, token = _real(syn)
    n_rows = len(rows) // ctx
    (tmp_path / "sae").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [
            python,
            str(HERE / "_saelens_reader.py"),
            str(tmp_path / "out" / "arith"),
            "blocks.4.hook_resid_post",
            str(ctx),
            str(syn.spec.d_model),
            str(n_rows),
            str(tmp_path / "sae"),
        ],
        check=True,
        env=env,
        timeout=600,
    )
    acts = np.load(tmp_path / "sae" / "acts.npy")
    np.testing.assert_array_equal(acts, rows[: n_rows * ctx, 1])
    ids = np.load(tmp_path / "sae" / "token_ids.npy")
    np.testing.assert_array_equal(ids, syn.metadata.token_id[prompt, token][: n_rows * ctx])


def test_export_refuses_bad_input(two_sets, tmp_path) -> None:
    path, _ = two_sets
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InvalidArgumentError, match="empty directory"):
        export_cache(path, tmp_path / "full", format="npy")
    with pytest.raises(InvalidArgumentError, match="format"):
        export_cache(path, tmp_path / "a", format="parquet")
    with pytest.raises(UnknownNameError, match="prompt set"):
        export_cache(path, tmp_path / "b", format="npy", prompt_sets=["nope"])
    with pytest.raises(UnknownNameError, match="layers"):
        export_cache(path, tmp_path / "c", format="npy", layers=[99])
    with pytest.raises(UnknownNameError, match="hooks"):
        export_cache(path, tmp_path / "d", format="npy", hooks=["resid_pre"])
    with pytest.raises(InvalidArgumentError, match="float32"):
        export_cache(path, tmp_path / "e", format="npy", prompt_sets=["arith"], dtype="float16")
    with pytest.raises(InvalidArgumentError, match="context_size"):
        export_cache(path, tmp_path / "f", format="hf-datasets", context_size=10_000)


def test_cli_export_and_no_torch(two_sets, tmp_path) -> None:
    path, syns = two_sets
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = (
        "import sys\nfrom actstore.cli import main\n"
        f"rc = main(['export', {str(path)!r}, '--format', 'npy', '--out', {str(tmp_path / 'o')!r},"
        " '--prompt-sets', 'physics', '--json'])\n"
        "print('TORCH' if 'torch' in sys.modules else 'NOTORCH', rc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "NOTORCH 0"
    report = json.loads(lines[0])
    assert report["physics"]["tokens"] == int(np.sum(syns["physics"].metadata.n_tokens))
    assert out.stderr == ""  # --json is quiet
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "actstore",
            "export",
            str(path),
            "--format",
            "npy",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith("actstore: error: expected a new or empty directory")
    assert "Traceback" not in bad.stderr
    shutil.rmtree(tmp_path / "o")
    loud = subprocess.run(
        [
            sys.executable,
            "-m",
            "actstore",
            "export",
            str(path),
            "--format",
            "npy",
            "--out",
            str(tmp_path / "o"),
            "--prompt-sets",
            "physics",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    n = report["physics"]["tokens"]
    assert f"actstore export: physics: {n}/{n} tokens" in loud.stderr  # a log line off a TTY
    assert loud.stdout.startswith(f"physics: {n} tokens -> ")
