"""``actstore verify CACHE --model DIR``: good caches pass, altered or foreign ones are named."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from actstore.cli import main
from actstore.errors import FingerprintMismatchError, InvalidArgumentError
from actstore.extractors import extract
from actstore.extractors._verify_model import verify_against_model
from actstore.extractors._verify_stats import ulp_distance
from tests.extractors._helpers import load_reference_model, read_set, reference_resid_post

HOOKS = ("resid_pre", "attn_out", "resid_mid", "mlp_in", "mlp_out", "resid_post")


@pytest.fixture(scope="module")
def caches(tiny_qwen2_dir, tmp_path_factory):
    """float32 and bfloat16 caches of 20 prompts in padded batches, every hook, layers 0, 2, 3."""
    from tests.extractors._helpers import mixed_prompt_set

    root = tmp_path_factory.mktemp("verify")
    out = {}
    for dtype in ("float32", "bfloat16"):
        out[dtype] = root / f"{dtype}.zarr"
        rep = extract(model=tiny_qwen2_dir, prompts=mixed_prompt_set(20), out=out[dtype],
                      layers="0,2,3", hooks=HOOKS, dtype=dtype, device="cpu", progress=False,
                      max_batch_tokens=128, block_size=8, batch_window=1)  # fmt: skip
        assert rep.plan.padding_fraction_batches > 0.1  # really batched with padding
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_good_cache_passes_with_a_line_per_layer(caches, tiny_qwen2_dir, dtype, capsys):
    args = ["verify", str(caches[dtype]), "--model", str(tiny_qwen2_dir), "--device", "cpu"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(HOOKS) * 3 + 1  # one per (hook, layer), then the summary
    assert all(line.startswith("ok ") for line in lines[:-1])
    assert "OK against" in lines[-1] and "re-ran 16 prompt(s)" in lines[-1]


def test_figures_equal_an_independent_comparison(caches, tiny_qwen2_dir):
    """max |diff| of resid_post equals stored vs. a plain transformers forward of each prompt."""
    rep = verify_against_model(caches["float32"], tiny_qwen2_dir, sample=None, device="cpu")
    assert rep.ok and rep.prompts["mixed"] == list(range(20))
    got = read_set(caches["float32"], "mixed", "resid_post")
    model = load_reference_model(tiny_qwen2_dir)
    worst = dict.fromkeys((0, 2, 3), 0.0)
    n_values = 0
    for i in range(20):
        n = int(got["n_tokens"][i])
        ref = reference_resid_post(model, got["token_id"][i, :n].tolist(), (0, 2, 3))
        for li, la in enumerate((0, 2, 3)):
            d = np.abs(got["act"][i, li, :n].astype(np.float64) - ref[li])
            worst[la] = max(worst[la], float(d.max()))
        n_values += n * 64
    by_layer = {r.layer: r for r in rep.results if r.hook == "resid_post"}
    for la, r in by_layer.items():
        assert r.n_values == n_values
        assert sum(r.ulp_counts.values()) == n_values
        np.testing.assert_allclose(r.max_abs_diff, worst[la], rtol=1e-6, atol=1e-9)
    assert max(worst.values()) > 0  # batched float32 is not bit-identical: a real comparison


@pytest.mark.parametrize(
    ("dtype", "delta"), [("float32", 1e-3), ("bfloat16", 1.0)], ids=["float32", "bfloat16"]
)
def test_altered_value_is_named(caches, tiny_qwen2_dir, tmp_path, dtype, delta, capsys):
    """One value of prompt 5, layer 2, mlp_out moved: that line fails and names the prompt."""
    import zarr

    import actstore.store  # noqa: F401  (bfloat16)

    bad = _copy(caches[dtype], tmp_path / "bad.zarr")
    arr = zarr.open_array(str(bad / "mixed" / "mlp_out"), mode="r+")
    v = arr[5, 1, 3, 7]
    arr[5, 1, 3, 7] = (np.float32(v) + np.float32(delta)).astype(arr.dtype)
    args = ["verify", str(bad), "--model", str(tiny_qwen2_dir), "--sample", "all", "--device",
            "cpu"]  # fmt: skip
    assert main(args) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1, failed
    assert failed[0].startswith("FAIL mixed mlp_out layer 2:")
    assert "1 values over tolerance, worst prompt 5 token 3 (d_model 7)" in failed[0]
    assert "1 of 18 layer/hook(s) FAIL" in lines[-1]


def test_cache_of_another_model_is_refused_at_the_fingerprint(
    caches, tiny_model_factory, tiny_qwen2_dir, capsys
):
    other = tiny_model_factory("qwen2", seed=1)  # same architecture and tokenizer, other weights
    with pytest.raises(FingerprintMismatchError, match=r"fingerprint field 'model' differs"):
        verify_against_model(caches["float32"], other, device="cpu")
    assert main(["verify", str(caches["float32"]), "--model", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fingerprint field 'model' differs: expected sha256:" in err[0]


def test_json_sample_and_seed(caches, tiny_qwen2_dir, capsys):
    base = ["verify", str(caches["bfloat16"]), "--model", str(tiny_qwen2_dir), "--json",
            "--device", "cpu"]  # fmt: skip
    assert main([*base, "--sample", "5", "--seed", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    chosen = doc["prompts"]["mixed"]
    assert len(chosen) == 5 and chosen == sorted(set(chosen))
    assert doc["ok"] is True and len(doc["layers"]) == 18
    row = doc["layers"][0]
    assert {"set", "hook", "layer", "max_abs_diff", "ulp", "ok", "tolerance"} <= set(row)
    assert sum(row["ulp"].values()) == row["values"]
    assert main([*base, "--sample", "5", "--seed", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["prompts"]["mixed"] == chosen  # reproducible
    assert main([*base, "--sample", "all"]) == 0
    assert json.loads(capsys.readouterr().out)["prompts"]["mixed"] == list(range(20))


@pytest.mark.parametrize("bad", ["0", "abc", "-3"])
def test_bad_sample_is_refused(bad):
    from actstore.extractors._verify_model import parse_sample

    with pytest.raises(InvalidArgumentError, match="--sample as a positive integer or 'all'"):
        parse_sample(bad)


def test_model_options_need_model(caches, capsys):
    assert main(["verify", str(caches["float32"]), "--sample", "4"]) == 2
    assert "expected --sample only with --model" in capsys.readouterr().err


def test_ulp_distance_counts_representable_numbers():
    """Against a table of every finite bfloat16 / float16 value, and nextafter for float32."""
    import ml_dtypes

    rng = np.random.default_rng(0)
    for name, dt in (("bfloat16", ml_dtypes.bfloat16), ("float16", np.float16)):
        with np.errstate(invalid="ignore", over="ignore"):
            table = np.arange(2**16, dtype=np.uint16).view(dt).astype(np.float64)
            table = np.unique(table[np.isfinite(table)])  # +0 and -0 are one number
            a = rng.choice(table[len(table) // 8 : -len(table) // 8], 2000).astype(dt)
            b = (a.astype(np.float64) * rng.uniform(0.9, 1.1, 2000)).astype(dt)
        b[0] = -a[0]  # across zero too
        lo, hi = np.minimum(a, b).astype(np.float64), np.maximum(a, b).astype(np.float64)
        want = np.searchsorted(table, hi) - np.searchsorted(table, lo)
        np.testing.assert_array_equal(ulp_distance(a, b, name), want)
    x = rng.normal(size=500).astype(np.float32)
    k = rng.integers(0, 30, 500)
    y = x.copy()
    for i in range(500):
        for _ in range(k[i]):
            y[i] = np.nextafter(y[i], np.float32(np.inf))
    np.testing.assert_array_equal(ulp_distance(x, y, "float32"), k)


def test_plain_verify_does_not_import_torch(caches):
    code = (
        "import sys\nfrom actstore.cli import main\n"
        f"rc = main(['verify', {str(caches['float32'])!r}])\n"
        "assert rc == 0, rc\nassert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_docs_state_the_tolerances_and_hook_tables_the_code_uses():
    """docs/verify.md's tolerance table is TOLERANCES; docs/hooks.md covers every family."""
    import re
    from pathlib import Path

    from actstore.extractors._hookpoints import _SITES
    from actstore.extractors._verify_stats import TOLERANCES

    docs = Path(__file__).resolve().parents[2] / "docs"
    text = (docs / "verify.md").read_text()

    def num(cell: str) -> float:
        cell = cell.strip()
        return 2.0 ** float(cell[2:]) if cell.startswith("2^") else float(cell)

    rows = re.findall(r"^\| (float32|bfloat16|float16) \| (\S+) \| (\S+) \|$", text, re.M)
    assert {d: (num(a), num(b)) for d, a, b in rows} == TOLERANCES
    hooks_doc = (docs / "hooks.md").read_text()
    table = [line for line in hooks_doc.splitlines() if line.startswith("| `")]
    named = set(re.findall(r"`([a-z0-9_]+)`", " ".join(line.split("|")[1] for line in table)))
    assert set(_SITES) <= named


@pytest.mark.slow  # boots TransformerBridge twice
def test_tlens_cache_is_rerun_through_the_bridge(tiny_qwen2_dir, mixed_prompts, tmp_path):
    import zarr

    out = tmp_path / "tl.zarr"
    extract(model=tiny_qwen2_dir, prompts=mixed_prompts[:4], out=out, layers="0,3",
            hooks=("resid_post", "mlp_in", "attn.hook_z"), backend="tlens", dtype="float32",
            device="cpu", progress=False, max_batch_tokens=1)  # fmt: skip
    rep = verify_against_model(out, tiny_qwen2_dir, sample=None, device="cpu")
    assert rep.ok and {r.hook for r in rep.results} == {"resid_post", "mlp_in", "attn_z"}
    arr = zarr.open_array(str(out / "mixed" / "attn_z"), mode="r+")
    arr[2, 1, 0, 5] = float(arr[2, 1, 0, 5]) + 1e-2
    rep = verify_against_model(out, tiny_qwen2_dir, sample=None, device="cpu")
    (bad,) = [r for r in rep.results if not r.ok]
    assert (bad.hook, bad.layer, bad.worst["prompt"], bad.worst["token"]) == ("attn_z", 3, 2, 0)
