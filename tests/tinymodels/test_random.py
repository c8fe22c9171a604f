"""Random-initialised checkpoints: offline loading, determinism, shapes, non-zero biases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

from actstore.errors import InvalidArgumentError  # noqa: E402
from actstore.tinymodels import build_random_model  # noqa: E402

ARCH_CLASS = {"qwen2": "Qwen2ForCausalLM", "gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}


def test_fixtures_load_offline_in_a_fresh_process(
    tiny_qwen2_dir: Path, tiny_gpt2_dir: Path, tiny_llama_dir: Path
) -> None:
    code = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
for path in sys.argv[1:]:
    model, info = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True)
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok("7 times 8 equals", return_tensors="pt")
    with torch.no_grad():
        out = model(**ids, output_hidden_states=True)
    print(json.dumps({"cls": type(model).__name__, "missing": sorted(info["missing_keys"]),
        "unexpected": sorted(info["unexpected_keys"]), "n_hidden": len(out.hidden_states),
        "d": out.hidden_states[0].shape[-1], "finite": bool(torch.isfinite(out.logits).all())}))
"""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": "/nonexistent",
    }
    dirs = [tiny_qwen2_dir, tiny_gpt2_dir, tiny_llama_dir]
    res = subprocess.run(
        [sys.executable, "-c", code, *map(str, dirs)], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [r["cls"] for r in rows] == list(ARCH_CLASS.values())
    for r in rows:
        assert r["missing"] == []
        assert r["unexpected"] == []
        assert r["n_hidden"] == 4 + 1
        assert r["d"] == 64
        assert r["finite"]


@pytest.mark.parametrize("arch", ["qwen2", "gpt2", "llama"])
def test_loaded_weights_are_the_saved_ones(arch: str, tiny_model_factory) -> None:
    from transformers import AutoModelForCausalLM

    path = tiny_model_factory(arch)
    saved = load_file(path / "model.safetensors")
    model = AutoModelForCausalLM.from_pretrained(path)
    state = model.state_dict()
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor), name
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == [ARCH_CLASS[arch]]
    assert model.config.num_hidden_layers == 4
    assert model.config.hidden_size == 64
    from tokenizers import Tokenizer

    # The embedding covers the whole tokenizer (byte symbols, merges and special tokens).
    assert (
        model.config.vocab_size
        == Tokenizer.from_file(str(path / "tokenizer.json")).get_vocab_size()
    )


def test_qwen2_has_nonzero_qkv_biases_and_norm_gains(tiny_qwen2_dir: Path) -> None:
    saved = load_file(tiny_qwen2_dir / "model.safetensors")
    for layer in range(4):
        for proj in ("q_proj", "k_proj", "v_proj"):
            bias = saved[f"model.layers.{layer}.self_attn.{proj}.bias"]
            assert bias.abs().min() > 0
            assert bias.std() > 0.05
    # Norm gains are randomised around 1 too, so "before/after the final norm" differs visibly.
    gain = saved["model.norm.weight"]
    assert not torch.allclose(gain, torch.ones_like(gain), atol=0.01)
    assert abs(float(gain.mean()) - 1) < 0.1


def test_same_seed_same_bytes_different_seed_different_weights(tmp_path: Path) -> None:
    kw = {"arch": "qwen2", "n_layers": 2, "d_model": 32, "vocab_size": 300}
    a = build_random_model(tmp_path / "a", seed=1, **kw)
    b = build_random_model(tmp_path / "b", seed=1, **kw)
    c = build_random_model(tmp_path / "c", seed=2, **kw)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tinymodel.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    wa, wc = load_file(a / "model.safetensors"), load_file(c / "model.safetensors")
    assert wa.keys() == wc.keys()
    assert all(not torch.equal(wa[k], wc[k]) for k in wa)


def test_shape_options_and_bfloat16(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    path = build_random_model(
        tmp_path,
        arch="llama",
        n_layers=3,
        d_model=48,
        n_heads=6,
        n_kv_heads=3,
        d_mlp=80,
        vocab_size=300,
        max_position=128,
        dtype="bfloat16",
    )
    saved = load_file(path / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.bfloat16}
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
    cfg = model.config
    assert model.dtype == torch.bfloat16
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (3, 48, 6)
    assert (cfg.num_key_value_heads, cfg.intermediate_size, cfg.max_position_embeddings) == (
        3,
        80,
        128,
    )
    assert saved["model.layers.0.self_attn.k_proj.weight"].shape == (3 * 8, 48)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arch": "bert"}, "arch"),
        ({"d_model": 65}, "divisible"),
        ({"d_model": 36, "n_heads": 4, "n_kv_heads": 4}, "even head size"),
        ({"n_heads": 4, "n_kv_heads": 3}, "n_kv_heads"),
        ({"n_layers": 0}, "n_layers"),
        ({"dtype": "int8"}, "dtype"),
    ],
)
def test_bad_arguments_raise_clear_errors(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        build_random_model(tmp_path, **kwargs)
