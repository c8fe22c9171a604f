"""The hf backend on thirteen more decoder families, each against a plain transformers forward.

Every family's tiny random model is built by ``actstore.tinymodels`` (3 layers, d_model 64). The
reference is independent of the extractor: ``output_hidden_states`` of the full causal LM for
every block input and every block output but the last, and a forward hook placed by hand on the
last block (whose path below is read from transformers' source, not found by the extractor),
because ``hidden_states[-1]`` has the final norm (and OPT's ``project_out``) applied.
"""

from __future__ import annotations

import numpy as np
import pytest

from actstore.errors import ModelLoadError
from actstore.extractors import extract
from tests.extractors._helpers import copy_checkpoint, load_reference_model, read_set

#: family -> (builder arguments, path of its decoder block list, what makes it different)
FAMILIES = {
    "opt": ({"d_embed": 32}, "model.decoder.layers", "embedding width 32 != residual width 64"),
    "gpt_neox": ({}, "gpt_neox.layers", "parallel attention and MLP"),
    "gptj": ({}, "transformer.h", "parallel attention and MLP"),
    "phi": ({}, "model.layers", "parallel attention and MLP, partial rotary"),
    "falcon": ({}, "transformer.h", "parallel attention and MLP, multi-query"),
    "bloom": ({}, "transformer.h", "ALiBi, embedding layer norm"),
    "mixtral": ({}, "model.layers", "mixture of experts"),
    "qwen2_moe": ({}, "model.layers", "mixture of experts with a shared expert"),
    "olmoe": ({}, "model.layers", "mixture of experts"),
    "gemma2": ({}, "model.layers", "sandwich norms, scaled embeddings, sliding window"),
    "mistral": ({}, "model.layers", "sliding window"),
    "phi3": ({}, "model.layers", "fused qkv"),
    "stablelm": ({}, "model.layers", "partial rotary"),
}
N_LAYERS = 3


@pytest.fixture
def family(request, tiny_model_factory):
    arch = request.param
    kwargs, blocks_path, _ = FAMILIES[arch]
    return arch, tiny_model_factory(arch, n_layers=N_LAYERS, **kwargs), blocks_path


def reference(model, blocks_path: str, token_ids: list[int]) -> dict[str, np.ndarray]:
    """``{"resid_pre", "resid_post"}: (layer, token, width)`` of one unpadded prompt."""
    return reference_n(model, blocks_path, token_ids, N_LAYERS)


def reference_n(model, blocks_path: str, token_ids: list[int], n_layers: int) -> dict:
    """:func:`reference` for a model of *n_layers* blocks."""
    import torch

    blocks = model.get_submodule(blocks_path)
    assert len(blocks) == n_layers
    last: list[torch.Tensor] = []

    def hook(module, args, output):
        last.append((output[0] if isinstance(output, tuple) else output).detach())

    handle = blocks[-1].register_forward_hook(hook)
    try:
        with torch.no_grad():
            hs = model(torch.tensor([token_ids]), output_hidden_states=True).hidden_states
    finally:
        handle.remove()
    post = [*hs[1:n_layers], last[0]]

    def stack(ts):
        t = torch.stack([x[0] for x in ts])
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy()
        return t.numpy()

    return {"resid_pre": stack(hs[:n_layers]), "resid_post": stack(post)}


@pytest.mark.parametrize("family", list(FAMILIES), indirect=True)
def test_family_float32_equals_plain_forward(family, mixed_prompts, tmp_path):
    arch, path, blocks_path = family
    prompts = mixed_prompts[:6]
    out = tmp_path / "c.zarr"
    kw = dict(model=path, prompts=prompts, out=out, layers="all", dtype="float32", device="cpu",
              progress=False, hooks=("resid_post", "resid_pre"))  # fmt: skip
    plan = extract(dry_run=True, **kw).plan
    rep = extract(max_batch_tokens=64, block_size=4, **kw)
    assert rep.complete
    assert rep.plan.padding_fraction_batches > 0  # padded batches were compared too
    model = load_reference_model(path)
    got = {h: read_set(out, "mixed", h) for h in ("resid_post", "resid_pre")}
    n_tok = got["resid_post"]["n_tokens"]
    ids0 = got["resid_post"]["token_id"][0, : int(n_tok[0])].tolist()
    width = reference(model, blocks_path, ids0)["resid_post"].shape[-1]
    # the plan (no weights), the stored arrays and the model agree on depth and width
    assert width == model.config.hidden_size == 64
    assert plan.d_model == rep.plan.d_model == width
    assert plan.n_layers_total == N_LAYERS
    assert got["resid_post"]["act"].shape[-1] == width
    if arch == "opt":  # the layout of OPT-350m: the embedding is narrower than the residual
        assert model.get_input_embeddings().weight.shape[1] == 32
    for i in range(len(prompts)):
        n = int(n_tok[i])
        ref = reference(model, blocks_path, got["resid_post"]["token_id"][i, :n].tolist())
        for h in ("resid_post", "resid_pre"):
            act = got[h]["act"]
            np.testing.assert_allclose(act[i, :, :n], ref[h], atol=1e-5, rtol=1e-5, err_msg=h)
            assert not act[i, :, n:].any()
    assert got["resid_post"]["act"].std() > 0.1


@pytest.mark.parametrize("family", list(FAMILIES), indirect=True)
def test_family_bfloat16_single_prompt_is_bit_identical(family, mixed_prompts, tmp_path):
    _, path, blocks_path = family
    prompts = mixed_prompts[:2]
    out = tmp_path / "c.zarr"
    extract(model=path, prompts=prompts, out=out, layers="all", dtype="bfloat16", device="cpu",
            max_batch_tokens=1, progress=False)  # fmt: skip
    got = read_set(out, "mixed")
    model = load_reference_model(path, "bfloat16")
    for i in range(len(prompts)):
        n = int(got["n_tokens"][i])
        ref = reference(model, blocks_path, got["token_id"][i, :n].tolist())["resid_post"]
        np.testing.assert_array_equal(got["act"][i, :, :n].view(np.int16), ref)


def test_blocks_narrower_than_config_are_refused_before_writing(
    tiny_llama_dir, mixed_prompts, tmp_path, monkeypatch
):
    """A model whose last block gives 32 of config.json's 64 dims: no cache claims either."""
    from transformers.models.llama import modeling_llama

    forward = modeling_llama.LlamaDecoderLayer.forward

    def narrow(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        h = out[0] if isinstance(out, tuple) else out
        return h[..., :32] if self.self_attn.layer_idx == 3 else out

    monkeypatch.setattr(modeling_llama.LlamaDecoderLayer, "forward", narrow)
    out = tmp_path / "c.zarr"
    msg = r"config\.json's width 64 \(hidden_size\), got width 32"
    with pytest.raises(ModelLoadError, match=msg):
        extract(model=tiny_llama_dir, prompts=mixed_prompts[:3], out=out, layers="-1",
                device="cpu", progress=False)  # fmt: skip
    assert not out.exists()


def test_tokenizer_beyond_the_embedding_is_refused(tiny_qwen2_dir, mixed_prompts, tmp_path):
    from tokenizers import Tokenizer

    from actstore.tinymodels import build_tokenizer
    from actstore.tinymodels._tokenizer import default_corpus

    m = copy_checkpoint(tiny_qwen2_dir, tmp_path / "m")
    # a larger tokenizer that learned the prompts' words: ids past the model's embedding
    corpus = [*default_corpus(), *[p.text for p in mixed_prompts.prompts] * 20]
    build_tokenizer(m, vocab_size=1000, arch="qwen2", corpus=corpus)
    n_vocab = load_reference_model(tiny_qwen2_dir).get_input_embeddings().weight.shape[0]
    enc = Tokenizer.from_file(str(m / "tokenizer.json"))
    top = max(max(enc.encode(p.text).ids) for p in mixed_prompts.prompts)
    assert top >= n_vocab  # the precondition: ids the model cannot embed
    out = tmp_path / "c.zarr"
    with pytest.raises(ModelLoadError, match=f"below the model's {n_vocab} embedding rows"):
        extract(model=m, prompts=mixed_prompts, out=out, device="cpu", progress=False)
    assert not out.exists()


def test_block_list_found_by_content_and_refused_when_ambiguous():
    import torch
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from actstore.extractors._hf import find_decoder_layers

    cfg = LlamaConfig(hidden_size=16, intermediate_size=32, num_attention_heads=2,
                      num_key_value_heads=1, num_hidden_layers=2)  # fmt: skip

    def stack(n):
        return torch.nn.ModuleList(LlamaDecoderLayer(cfg, i) for i in range(n))

    class Odd(torch.nn.Module):  # a layout under no name the backend knows
        def __init__(self):
            super().__init__()
            self.trunk = torch.nn.Module()
            self.trunk.stages = stack(2)
            self.heads = torch.nn.ModuleList(torch.nn.Linear(16, 4) for _ in range(2))

    odd = Odd()
    assert find_decoder_layers(odd, 2) is odd.trunk.stages
    with pytest.raises(ModelLoadError, match=r"expected 3 decoder blocks .* trunk\.stages \(2"):
        find_decoder_layers(odd, 3)
    odd.other = stack(2)
    with pytest.raises(ModelLoadError, match=r"several \(trunk\.stages, other\).*--backend tlens"):
        find_decoder_layers(odd, 2)
    plain = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ModelLoadError, match=r"found none.*--backend tlens"):
        find_decoder_layers(plain, 2)


def test_config_read_per_family_names(tmp_path):
    """Depth and width from config.json under each family's names, as transformers reads them."""
    import json

    from actstore.extractors import read_model_config

    cases = {
        "bloom": ({"model_type": "bloom", "n_layer": 5, "hidden_size": 48, "n_head": 4}, 5, 48),
        "gptj": ({"model_type": "gptj", "n_layer": 6, "n_embd": 32, "n_head": 4}, 6, 32),
        "opt": (
            {
                "model_type": "opt",
                "num_hidden_layers": 2,
                "hidden_size": 64,
                "word_embed_proj_dim": 32,
                "num_attention_heads": 4,
            },
            2,
            64,
        ),
        # a model_type transformers does not know: the raw names (MPT style) are read
        "unknown": ({"model_type": "not_a_family", "n_layers": 7, "d_model": 96}, 7, 96),
    }
    for name, (cfg, n_layers, d_model) in cases.items():
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps(cfg))
        got = read_model_config(d, need_weights=False)
        assert (got.n_layers, got.d_model) == (n_layers, d_model), name


def test_issue_opt350m_layout_through_the_cli(tiny_model_factory, tmp_path, capsys):
    """The issue's input: a 2-layer OPT, word_embed_proj_dim 32, hidden_size 64, `extract`."""
    import json

    import zarr

    import actstore.store  # noqa: F401  (registers bfloat16)
    from actstore.cli import main

    path = tiny_model_factory("opt", n_layers=2, d_embed=32)
    out = tmp_path / "c.zarr"
    args = ["extract", "--model", str(path), "--prompts", "multiplication", "--n", "6",
            "--out", str(out), "--device", "cpu", "--json"]  # fmt: skip
    assert main([*args, "--dry-run"]) == 0
    planned = json.loads(capsys.readouterr().out)["plan"]
    assert main(args) == 0
    written = json.loads(capsys.readouterr().out)
    assert planned["d_model"] == written["plan"]["d_model"] == 64
    g = zarr.open_group(str(out), mode="r")
    (name,) = [k for k, _ in g.groups()]
    act = g[name]["resid_post"]
    assert act.shape[-1] == 64 and act.shape[1] == 2
    model = load_reference_model(path)
    assert model.get_input_embeddings().weight.shape[1] == 32
    n = int(g[name]["n_tokens"][0])
    ids = g[name]["token_id"][0, :n].tolist()
    ref = reference_n(model, "model.decoder.layers", ids, 2)["resid_post"]
    np.testing.assert_allclose(np.asarray(act[0, :, :n]), ref, atol=1e-5, rtol=1e-5)


def test_a_batch_of_another_width_stops_before_its_block_is_written(
    tiny_llama_dir, mixed_prompts, tmp_path, monkeypatch
):
    """Blocks that change width only for longer inputs (after the load-time probe)."""
    from transformers.models.llama import modeling_llama

    from actstore.errors import ExtractionError
    from actstore.store import open_cache

    forward = modeling_llama.LlamaDecoderLayer.forward

    def narrow_later(self, hidden_states, *args, **kwargs):
        out = forward(self, hidden_states, *args, **kwargs)
        h = out[0] if isinstance(out, tuple) else out
        late = self.self_attn.layer_idx == 3 and hidden_states.shape[1] > 2
        return h[..., :32] if late else out

    monkeypatch.setattr(modeling_llama.LlamaDecoderLayer, "forward", narrow_later)
    out = tmp_path / "c.zarr"
    with pytest.raises(ExtractionError, match=r"expected resid_post of layer 3 shaped .* 64\)"):
        extract(model=tiny_llama_dir, prompts=mixed_prompts[:4], out=out, layers="0,-1",
                device="cpu", progress=False)  # fmt: skip
    assert open_cache(out).missing_blocks("mixed") == [0]  # resumable, nothing claimed written
