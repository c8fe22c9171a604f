"""Dry run, batching plan, layer/shard/hook parsing, fingerprints, progress output."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from actstore.extractors import (
    extract,
    resolve_layers,
    tokenizer_fingerprint,
    weights_fingerprint,
)
from actstore.extractors._batching import plan_batches
from actstore.extractors._extract_config import parse_shard
from actstore.extractors._hooks import resolve_hooks
from tests.extractors._helpers import QWEN25_32B_CONFIG, copy_checkpoint


@pytest.fixture
def qwen32b_config_dir(tmp_path, tiny_qwen2_dir):
    """config.json of Qwen2.5-32B next to a (tiny) tokenizer; no weights at all."""
    d = copy_checkpoint(
        tiny_qwen2_dir, tmp_path / "qwen32b", skip=("model.safetensors", "config.json")
    )
    (d / "config.json").write_text(json.dumps(QWEN25_32B_CONFIG))
    return d


def test_dry_run_qwen32b_plan_without_weights(qwen32b_config_dir, mixed_prompts, tmp_path):
    out = tmp_path / "c.zarr"
    rep = extract(
        model=qwen32b_config_dir, prompts=mixed_prompts, out=out, dry_run=True,
        layers="7,15,23,31,47,55,63", dtype="bfloat16", device="cpu",
    )  # fmt: skip
    plan = rep.plan
    assert rep.status == "dry-run"
    assert not out.exists()
    assert plan.n_layers_total == 64
    assert plan.d_model == 5120
    assert plan.layers == (7, 15, 23, 31, 47, 55, 63)
    lengths = np.array([len(p.text) for p in mixed_prompts.prompts])  # sanity: varied lengths
    assert lengths.std() > 5
    assert plan.n_prompts == 24
    t_max, total = plan.n_tokens_max, plan.n_tokens_total
    assert plan.bytes_uncompressed == 24 * t_max * 7 * 5120 * 2
    assert plan.bytes_real_tokens == total * 7 * 5120 * 2
    assert plan.padding_fraction_storage == pytest.approx(1 - total / (24 * t_max))
    assert 0 <= plan.padding_fraction_batches < 1
    assert "5120" in plan.describe()


def test_dry_run_cli(qwen32b_config_dir, tmp_path, capsys):
    from actstore.cli import main

    code = main(
        ["extract", "--model", str(qwen32b_config_dir), "--prompts", "multiplication", "--n",
         "100", "--layers", "-1", "--dtype", "bfloat16", "--out", str(tmp_path / "c.zarr"),
         "--dry-run", "--json"]
    )  # fmt: skip
    assert code == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["layers"] == [63]
    assert plan["n_prompts"] == 100
    assert plan["bytes_uncompressed"] == 100 * plan["n_tokens_max"] * 5120 * 2
    assert not (tmp_path / "c.zarr").exists()


def test_resolve_layers():
    assert resolve_layers("all", 4) == (0, 1, 2, 3)
    assert resolve_layers("3,-1,0", 4) == (0, 3)
    assert resolve_layers([-4, 1], 4) == (0, 1)
    assert resolve_layers(2, 4) == (2,)


def test_parse_shard():
    assert parse_shard("1/4") == (1, 4)
    assert parse_shard((0, 1)) == (0, 1)
    assert parse_shard(None) is None


def test_resolve_hooks():
    assert resolve_hooks("resid_post", "hf") == (("resid_post",), ("resid_post",))
    rel, var = resolve_hooks(["resid_post", "blocks.3.attn.hook_z", "hook_resid_mid"], "tlens")
    assert rel == ("hook_resid_post", "attn.hook_z", "hook_resid_mid")
    assert var == ("resid_post", "attn_z", "resid_mid")


def test_plan_batches_bounds_padding_and_partitions_blocks():
    rng = np.random.default_rng(0)
    n_tokens = rng.integers(1, 50, size=103)
    blocks = [(b, b * 10, min(b * 10 + 10, 103)) for b in range(11)]
    batches = plan_batches(n_tokens, blocks, max_batch_tokens=64)
    seen = sorted(i for b in batches for i in b.indices)
    assert seen == list(range(103))  # every prompt exactly once
    for b in batches:
        (g,) = b.blocks
        start, stop = blocks[g][1:]
        assert all(start <= i < stop for i in b.indices)  # never crosses a block
        assert b.seq_len == max(n_tokens[list(b.indices)])
        assert b.padded_tokens <= 64 or len(b.indices) == 1
    # length grouping beats arrival order: less padding than fixed-size batches in index order
    padded = sum(b.padded_tokens for b in batches)
    naive = sum(
        int(n_tokens[s:e].max()) * (e - s) for s in range(0, 103, 3) for e in [min(s + 3, 103)]
    )
    assert padded < naive
    assert plan_batches(n_tokens, blocks, 64) == batches  # deterministic


def test_fingerprints_change_with_weights_and_tokenizer(
    tmp_path, tiny_qwen2_dir, tiny_model_factory
):
    a = weights_fingerprint(tiny_qwen2_dir)
    assert a == weights_fingerprint(copy_checkpoint(tiny_qwen2_dir, tmp_path / "copy"))
    assert a != weights_fingerprint(tiny_model_factory("qwen2", seed=1))
    t = tokenizer_fingerprint(tiny_qwen2_dir)
    m = copy_checkpoint(tiny_qwen2_dir, tmp_path / "m")
    cfg = json.loads((m / "tokenizer_config.json").read_text())
    cfg["model_max_length"] = 7
    (m / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert tokenizer_fingerprint(m) != t


def test_fingerprint_and_provenance_recorded(tiny_llama_dir, mixed_prompts, tmp_path):
    from actstore.store import open_cache

    out = tmp_path / "c.zarr"
    extract(model=tiny_llama_dir, prompts=mixed_prompts, out=out, layers="-1", dtype="float32",
            device="cpu", progress=False, command="test-command")  # fmt: skip
    info = open_cache(out).set_info("mixed")
    fp, prov = info["spec"]["fingerprint"], info["spec"]["provenance"]
    assert fp["prompts"] == mixed_prompts.content_hash()
    assert fp["model"] == weights_fingerprint(tiny_llama_dir)
    assert fp["layers"] == [3]
    assert fp["backend"] == "hf"
    assert fp["bos"]["prepended"] is True  # the Llama tokenizer adds BOS
    assert prov["command"] == "test-command"
    assert prov["attn_implementation"] in ("sdpa", "eager")
    assert "before the final norm" in prov["hook_semantics"]["resid_post"]
    assert prov["library_versions"]["transformers"]


def test_span_masks_and_token_metadata(tiny_qwen2_dir, mixed_prompts, tmp_path):
    import zarr

    from actstore.extractors._tokenize import load_tokenizer

    out = tmp_path / "c.zarr"
    extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=out, layers="0", dtype="float32",
            device="cpu", progress=False)  # fmt: skip
    g = zarr.open_group(str(out), mode="r")["mixed"]
    tok = load_tokenizer(str(tiny_qwen2_dir))
    spans = list(g["span"][:])
    ai = spans.index("answer")
    for i, p in enumerate(mixed_prompts.prompts):
        ids = tok(p.text)["input_ids"]
        n = int(g["n_tokens"][i])
        assert g["token_id"][i, :n].tolist() == ids
        mask = g["span_mask"][i, ai]
        answer = "".join(g["token_str"][i, :n][mask[:n]]).strip()
        assert answer == str(p.labels["value"])


def test_progress_log_lines_when_not_a_tty():
    from actstore.extractors._progress import Progress

    stream = io.StringIO()
    prog = Progress(100, 2, stream=stream, interval=0.0)
    assert prog.mode == "log"
    prog.add_tokens(50)
    prog.add_block(2048)
    prog.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("actstore extract: 50/100 tokens")
    assert "blocks 1/2" in lines[-1]
    assert "ETA" in lines[-1]
