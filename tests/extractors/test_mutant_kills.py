"""Extractor behaviour that hand-made mutants showed untested (see tests/mutation/)."""

from __future__ import annotations

import numpy as np
import pytest

from actstore.errors import ExtractionError
from actstore.extractors import extract
from tests.extractors._helpers import copy_checkpoint


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_nan_activations_are_refused_in_half_precision(tmp_path, tiny_qwen2_dir, dtype):
    """A NaN in a bfloat16/float16 block is found (bfloat16 is checked on its bits)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_qwen2_dir), dtype=torch.float32)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[0, 0] = float("nan")
    m = copy_checkpoint(tiny_qwen2_dir, tmp_path / "m")
    model.save_pretrained(m)
    from tests.extractors._helpers import mixed_prompt_set

    out = tmp_path / "c.zarr"
    with pytest.raises(ExtractionError, match=r"NaN or inf in prompt \d+ at layer 1"):
        extract(
            model=m,
            prompts=mixed_prompt_set(n=6),
            out=out,
            layers="all",
            dtype=dtype,
            device="cpu",
            progress=False,
        )
    from actstore.store import open_cache

    assert open_cache(out).missing_blocks("mixed") == [0]


def test_forward_stops_after_the_deepest_captured_block(tiny_qwen2_dir):
    """Blocks after the deepest requested layer (and the final norm) never run."""
    import torch
    from transformers import AutoModelForCausalLM

    from actstore.extractors._hf import HFBackend

    model = AutoModelForCausalLM.from_pretrained(str(tiny_qwen2_dir), dtype=torch.float32)
    calls: list[str] = []
    for i, block in enumerate(model.model.layers):
        block.register_forward_hook(lambda *a, i=i: calls.append(f"block{i}"))
    model.model.norm.register_forward_hook(lambda *a: calls.append("norm"))
    backend = HFBackend(
        str(tiny_qwen2_dir),
        layers=[0, 1],
        hooks=["resid_post"],
        torch_dtype=torch.float32,
        device=torch.device("cpu"),
        n_layers=len(model.model.layers),
        model=model,
    )
    calls.clear()  # the backend's load-time width probe ran the blocks once already
    ids = torch.tensor([[5, 6, 7, 8]])
    got = backend.capture(ids, torch.ones_like(ids))
    backend.close()
    assert calls == ["block0", "block1"]
    # and what it captured is the blocks' output, as a plain forward gives it
    with torch.no_grad():
        hs = model(input_ids=ids, output_hidden_states=True).hidden_states
    for li in (0, 1):
        np.testing.assert_array_equal(got["resid_post"][li].numpy(), hs[li + 1].numpy())


def test_batch_exactly_at_the_token_budget_is_one_batch():
    from actstore.extractors._batching import plan_batches

    n_tokens = np.array([4, 4, 3, 4])
    batches = plan_batches(n_tokens, [(0, 0, 4)], max_batch_tokens=16)
    assert len(batches) == 1 and batches[0].padded_tokens == 16
    batches = plan_batches(n_tokens, [(0, 0, 4)], max_batch_tokens=15)
    assert [b.padded_tokens for b in batches] == [12, 3]


def test_batches_are_longest_first_inside_a_block():
    from actstore.extractors._batching import plan_batches

    n_tokens = np.array([2, 9, 5, 9, 1])
    (batch,) = plan_batches(n_tokens, [(0, 0, 5)], max_batch_tokens=1000)
    assert batch.indices == (1, 3, 2, 0, 4)  # by length, ties by index


def test_prepend_bos_never_doubles_it(tiny_llama_dir):
    """bos='prepend' with a tokenizer that already starts with BOS (Llama): one BOS."""
    from actstore.extractors._tokenize import load_tokenizer, tokenize_prompts
    from tests.extractors._helpers import mixed_prompt_set

    tok = load_tokenizer(str(tiny_llama_dir))
    prompts = mixed_prompt_set(n=4)
    auto = tokenize_prompts(tok, prompts, bos="auto")
    pre = tokenize_prompts(tok, prompts, bos="prepend")
    assert all(ids[0] == tok.bos_token_id for ids in auto.ids)  # Llama adds one itself
    assert pre.ids == auto.ids
    for ids in pre.ids:
        assert ids.count(tok.bos_token_id) == 1
    # padding of the token-id grid is -1, never a real id
    for i, ids in enumerate(pre.ids):
        assert (pre.token_id[i, len(ids) :] == -1).all()
        np.testing.assert_array_equal(pre.token_id[i, : len(ids)], ids)


@pytest.mark.parametrize(
    ("request_", "want"),
    [("0,3", (0, 3)), ("-4", (0,)), ("-1,3", (3,)), ([2, -2], (2,)), ("all", (0, 1, 2, 3))],
)
def test_layer_bounds_are_inclusive_of_both_ends(request_, want):
    from actstore.extractors._layers import resolve_layers

    assert resolve_layers(request_, 4) == want


@pytest.mark.parametrize("request_", ["4", "-5", [0, 4], 7])
def test_layer_bounds_refuse_outside_the_depth(request_):
    from actstore.errors import InvalidArgumentError
    from actstore.extractors._layers import resolve_layers

    with pytest.raises(InvalidArgumentError, match="4 decoder layers"):
        resolve_layers(request_, 4)


@pytest.mark.parametrize("backend", ["hf", "tlens"])
def test_repeated_hook_is_captured_once(backend):
    from actstore.extractors._hooks import resolve_hooks

    names, store = resolve_hooks("resid_post, resid_post,resid_pre", backend)
    assert len(names) == len(set(names)) == 2
    assert store[0] == "resid_post" and len(store) == 2
