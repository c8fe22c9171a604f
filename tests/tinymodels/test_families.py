"""The tiny random models of the thirteen further decoder families load as what they claim."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from actstore.errors import InvalidArgumentError  # noqa: E402
from actstore.tinymodels import ARCHS, build_random_model  # noqa: E402
from actstore.tinymodels._families import FAMILIES  # noqa: E402
from tests.extractors.test_families import FAMILIES as EXTRACTOR_FAMILIES  # noqa: E402
from tests.extractors.test_families import N_LAYERS  # noqa: E402


def _rotary(config) -> float:
    return config.rope_parameters["partial_rotary_factor"]


#: what makes each family different, read back from the loaded model's config
LAYOUT = {
    "opt": lambda c: c.word_embed_proj_dim == 32 and c.hidden_size == 64,
    "gpt_neox": lambda c: c.use_parallel_residual and _rotary(c) == 0.5,
    "gptj": lambda c: c.rotary_dim == 8,
    "phi": lambda c: _rotary(c) == 0.5,
    "falcon": lambda c: c.parallel_attn and not c.new_decoder_architecture,
    "bloom": lambda c: c.n_head == 4,
    "mixtral": lambda c: c.num_local_experts == 4 and c.num_experts_per_tok == 2,
    "qwen2_moe": lambda c: c.num_experts == 4 and c.shared_expert_intermediate_size > 0,
    "olmoe": lambda c: c.num_experts == 4 and c.num_experts_per_tok == 2,
    "gemma2": lambda c: c.head_dim == 16 and c.sliding_window == 8,
    "mistral": lambda c: c.sliding_window == 8,
    "phi3": lambda c: c.num_key_value_heads == 2,
    "stablelm": lambda c: _rotary(c) == 0.5,
}


def test_every_family_is_tested_by_the_extractor():
    assert set(FAMILIES) == set(LAYOUT) == set(EXTRACTOR_FAMILIES)
    assert set(FAMILIES) < set(ARCHS)


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_family_loads_complete_with_its_layout_and_tokenizer(arch, tiny_model_factory):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_model_factory(arch, n_layers=N_LAYERS, **EXTRACTOR_FAMILIES[arch][0])
    model, info = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True)
    # every weight comes from the file (MoE experts are saved one by one and fused on load, so
    # names differ between file and model; a missing one would be initialised at random)
    assert not info["missing_keys"]
    assert not info["unexpected_keys"]
    assert model.config.model_type == arch
    assert json.loads((path / "config.json").read_text())["model_type"] == arch
    assert LAYOUT[arch](model.config)
    assert model.config.num_hidden_layers == N_LAYERS and model.config.hidden_size == 64
    again = AutoModelForCausalLM.from_pretrained(path)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name  # nothing drawn at load time
    text = "the product of 7 times 8 equals 56"
    raw = Tokenizer.from_file(str(path / "tokenizer.json"))
    assert AutoTokenizer.from_pretrained(path)(text)["input_ids"] == raw.encode(text).ids
    assert model.get_input_embeddings().weight.shape[0] == raw.get_vocab_size()


def test_d_embed_only_for_opt(tmp_path):
    with pytest.raises(InvalidArgumentError, match="d_embed only for arch 'opt'"):
        build_random_model(tmp_path, arch="mistral", d_embed=32, n_layers=1, vocab_size=300)
