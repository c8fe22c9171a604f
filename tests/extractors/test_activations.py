"""Stored activations equal an independent plain-transformers reference, for every layer."""

from __future__ import annotations

import numpy as np
import pytest

from actstore.extractors import extract
from tests.extractors._helpers import load_reference_model, read_set, reference_resid_post

ARCHS = ["qwen2", "gpt2", "llama"]


@pytest.fixture
def model_dir(request, tiny_qwen2_dir, tiny_gpt2_dir, tiny_llama_dir):
    return {"qwen2": tiny_qwen2_dir, "gpt2": tiny_gpt2_dir, "llama": tiny_llama_dir}[request.param]


@pytest.mark.parametrize("model_dir", ARCHS, indirect=True)
def test_float32_every_layer_matches_reference(model_dir, mixed_prompts, tmp_path):
    out = tmp_path / "c.zarr"
    # small batches and blocks: several padded batches per block, several blocks
    mixed_prompts = mixed_prompts[:14]  # keeps the per-prompt reference loop short
    rep = extract(
        model=model_dir,
        prompts=mixed_prompts,
        out=out,
        layers="all",
        dtype="float32",
        device="cpu",
        max_batch_tokens=64,
        block_size=8,
        progress=False,
    )
    assert rep.status == "written"
    assert rep.complete
    got = read_set(out, "mixed")
    ref_model = load_reference_model(model_dir)
    n_layers = ref_model.config.num_hidden_layers
    assert got["layer"].tolist() == list(range(n_layers))
    assert got["act"].dtype == np.float32
    for i in range(len(mixed_prompts)):
        n = int(got["n_tokens"][i])
        ids = got["token_id"][i, :n].tolist()
        ref = reference_resid_post(ref_model, ids, range(n_layers))
        np.testing.assert_allclose(got["act"][i, :, :n], ref, atol=1e-5, rtol=1e-5)
        assert not got["act"][i, :, n:].any(), "padding positions must be stored as zeros"


def test_last_layer_is_before_final_norm(tiny_qwen2_dir, mixed_prompts, tmp_path):
    """The last block's resid_post is not HF's hidden_states[-1] (which is after the norm)."""
    import torch

    out = tmp_path / "c.zarr"
    extract(
        model=tiny_qwen2_dir,
        prompts=mixed_prompts[:3],
        out=out,
        layers="-1",
        dtype="float32",
        device="cpu",
        progress=False,
    )
    got = read_set(out, "mixed")
    model = load_reference_model(tiny_qwen2_dir)
    n = int(got["n_tokens"][0])
    with torch.no_grad():
        hs = model(torch.tensor([got["token_id"][0, :n].tolist()]), output_hidden_states=True)
    normed = hs.hidden_states[-1][0].numpy()
    assert np.abs(got["act"][0, 0, :n] - normed).max() > 1e-2
    np.testing.assert_allclose(
        model.model.norm(torch.from_numpy(got["act"][0, 0, :n])).detach().numpy(),
        normed,
        atol=1e-5,
    )


def test_bfloat16_bit_identical_to_model_output(tiny_qwen2_dir, mixed_prompts, tmp_path):
    import ml_dtypes

    out = tmp_path / "c.zarr"
    prompts = mixed_prompts[:8]
    # one prompt per forward pass (no padding): the model's own bf16 output, bit for bit
    extract(
        model=tiny_qwen2_dir,
        prompts=prompts,
        out=out,
        layers="0,2,-1",
        dtype="bfloat16",
        device="cpu",
        max_batch_tokens=1,
        progress=False,
    )
    got = read_set(out, "mixed")
    assert got["act"].dtype == ml_dtypes.bfloat16
    model = load_reference_model(tiny_qwen2_dir, "bfloat16")
    for i in range(len(prompts)):
        n = int(got["n_tokens"][i])
        ref = reference_resid_post(model, got["token_id"][i, :n].tolist(), [0, 2, 3])
        assert ref.dtype == ml_dtypes.bfloat16
        np.testing.assert_array_equal(got["act"][i, :, :n].view(np.uint16), ref.view(np.uint16))


def test_padding_and_batch_composition_do_not_change_activations(
    tiny_llama_dir, mixed_prompts, tmp_path
):
    kw = dict(model=tiny_llama_dir, layers="all", dtype="float32", device="cpu", progress=False)
    extract(prompts=mixed_prompts, out=tmp_path / "a.zarr", max_batch_tokens=1, **kw)
    extract(prompts=mixed_prompts, out=tmp_path / "b.zarr", max_batch_tokens=100_000, **kw)
    # reversed order: every prompt lands in other batches, next to other prompts
    rev = mixed_prompts.subset(range(len(mixed_prompts) - 1, -1, -1))
    extract(prompts=rev, out=tmp_path / "c.zarr", max_batch_tokens=40, block_size=5, **kw)
    a = read_set(tmp_path / "a.zarr", "mixed")
    b = read_set(tmp_path / "b.zarr", "mixed")
    c = read_set(tmp_path / "c.zarr", "mixed")
    np.testing.assert_allclose(a["act"], b["act"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(a["act"], c["act"][::-1], atol=1e-5, rtol=0)
    assert np.array_equal(a["token_id"], c["token_id"][::-1])
    assert a["act"].std() > 0.1  # not trivially equal


def test_tlens_backend_agrees_with_hf(tiny_qwen2_dir, mixed_prompts, tmp_path):
    prompts = mixed_prompts[:10]
    kw = dict(
        model=tiny_qwen2_dir,
        prompts=prompts,
        layers="1,-1",
        dtype="float32",
        device="cpu",
        max_batch_tokens=64,
        progress=False,
    )
    extract(out=tmp_path / "hf.zarr", backend="hf", **kw)
    rep = extract(out=tmp_path / "tl.zarr", backend="tlens", **kw)
    assert rep.status == "written"
    hf = read_set(tmp_path / "hf.zarr", "mixed")
    tl = read_set(tmp_path / "tl.zarr", "mixed")
    np.testing.assert_allclose(hf["act"], tl["act"], atol=1e-5, rtol=1e-5)
    assert np.array_equal(hf["token_id"], tl["token_id"])


def test_tlens_any_hook_matches_run_with_cache(tiny_qwen2_dir, mixed_prompts, tmp_path):
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    prompts = mixed_prompts[:4]
    out = tmp_path / "tl.zarr"
    extract(
        model=tiny_qwen2_dir,
        prompts=prompts,
        out=out,
        layers="0,2",
        backend="tlens",
        hooks=("hook_resid_mid", "attn.hook_z"),
        dtype="float32",
        device="cpu",
        max_batch_tokens=1,
        progress=False,
    )
    mid = read_set(out, "mixed", "resid_mid")
    z = read_set(out, "mixed", "attn_z")
    bridge = TransformerBridge.boot_transformers(
        str(tiny_qwen2_dir), dtype=torch.float32, device="cpu"
    )
    for i in range(len(prompts)):
        n = int(mid["n_tokens"][i])
        ids = torch.tensor([mid["token_id"][i, :n].tolist()])
        with torch.no_grad():
            _, cache = bridge.run_with_cache(ids)
        for li, layer in enumerate([0, 2]):
            np.testing.assert_allclose(
                mid["act"][i, li, :n],
                cache[f"blocks.{layer}.hook_resid_mid"][0].numpy(),
                atol=1e-5,
            )
            np.testing.assert_allclose(
                z["act"][i, li, :n],
                cache[f"blocks.{layer}.attn.hook_z"][0].reshape(n, -1),
                atol=1e-5,
            )


def test_resid_pre_is_block_input(tiny_gpt2_dir, mixed_prompts, tmp_path):
    import torch

    out = tmp_path / "c.zarr"
    prompts = mixed_prompts[:5]
    hooks = ("resid_post", "resid_pre")
    extract(model=tiny_gpt2_dir, prompts=prompts, out=out, layers="0,2", hooks=hooks,
            dtype="float32", device="cpu", progress=False)  # fmt: skip
    pre = read_set(out, "mixed", "resid_pre")
    post = read_set(out, "mixed", "resid_post")
    model = load_reference_model(tiny_gpt2_dir)
    for i in range(len(prompts)):
        n = int(pre["n_tokens"][i])
        with torch.no_grad():
            hs = model(torch.tensor([pre["token_id"][i, :n].tolist()]), output_hidden_states=True)
        for li, layer in enumerate([0, 2]):
            np.testing.assert_allclose(pre["act"][i, li, :n], hs.hidden_states[layer][0], atol=1e-5)
            np.testing.assert_allclose(
                post["act"][i, li, :n], hs.hidden_states[layer + 1][0], atol=1e-5
            )
