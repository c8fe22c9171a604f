"""Every hf hook point on sixteen decoder families, against hooks placed by hand in this test.

For each family one extraction captures every hook point in one forward pass per (padded) batch.
The reference runs the plain ``AutoModelForCausalLM`` on each prompt alone, with forward hooks
placed on the submodules named below (paths read from transformers' modeling code, written here
by hand, not taken from the extractor), and ``output_hidden_states`` for the block inputs. The
residual identities must hold as well: ``resid_post = resid_pre + attn_out + mlp_out`` on every
family, ``resid_mid = resid_pre + attn_out`` on sequential ones. A few families are also compared
with the TransformerLens bridge (``--backend tlens``).
"""

from __future__ import annotations

import numpy as np
import pytest

from actstore.errors import InvalidArgumentError
from actstore.extractors import extract
from tests.extractors._helpers import copy_checkpoint, load_reference_model, read_set

N_LAYERS = 3
ALL = ("resid_pre", "attn_out", "resid_mid", "mlp_in", "mlp_out", "resid_post")

_LL = {  # llama-like blocks under model.layers
    "attn_out": ("model.layers.{l}.self_attn", "out"),
    "resid_mid": ("model.layers.{l}.post_attention_layernorm", "in"),
    "mlp_in": ("model.layers.{l}.post_attention_layernorm", "out"),
    "mlp_out": ("model.layers.{l}.mlp", "out"),
}
#: family -> (builder arguments, parallel attention/MLP, {hook: (module path, "in" | "out")})
FAMILIES = {
    "qwen2": ({}, False, _LL),
    "llama": ({}, False, _LL),
    "mistral": ({}, False, _LL),
    "mixtral": ({}, False, _LL),
    "qwen2_moe": ({}, False, _LL),
    "olmoe": ({}, False, _LL),
    "phi3": ({}, False, _LL),
    "stablelm": ({}, False, _LL),
    "gpt2": ({}, False, {
        "attn_out": ("transformer.h.{l}.attn", "out"),
        "resid_mid": ("transformer.h.{l}.ln_2", "in"),
        "mlp_in": ("transformer.h.{l}.ln_2", "out"),
        "mlp_out": ("transformer.h.{l}.mlp", "out"),
    }),
    "opt": ({"d_embed": 32}, False, {
        "attn_out": ("model.decoder.layers.{l}.self_attn", "out"),
        "resid_mid": ("model.decoder.layers.{l}.final_layer_norm", "in"),
        "mlp_in": ("model.decoder.layers.{l}.final_layer_norm", "out"),
        "mlp_out": ("model.decoder.layers.{l}.fc2", "out"),
    }),
    "bloom": ({}, False, {
        "attn_out": ("transformer.h.{l}.self_attention.dense", "out"),
        "resid_mid": ("transformer.h.{l}.post_attention_layernorm", "in"),
        "mlp_in": ("transformer.h.{l}.post_attention_layernorm", "out"),
        "mlp_out": ("transformer.h.{l}.mlp.dense_4h_to_h", "out"),
    }),
    "gemma2": ({}, False, {
        "attn_out": ("model.layers.{l}.post_attention_layernorm", "out"),
        "resid_mid": ("model.layers.{l}.pre_feedforward_layernorm", "in"),
        "mlp_in": ("model.layers.{l}.pre_feedforward_layernorm", "out"),
        "mlp_out": ("model.layers.{l}.post_feedforward_layernorm", "out"),
    }),
    "gpt_neox": ({}, True, {
        "attn_out": ("gpt_neox.layers.{l}.attention", "out"),
        "mlp_in": ("gpt_neox.layers.{l}.post_attention_layernorm", "out"),
        "mlp_out": ("gpt_neox.layers.{l}.mlp", "out"),
    }),
    "gptj": ({}, True, {
        "attn_out": ("transformer.h.{l}.attn", "out"),
        "mlp_in": ("transformer.h.{l}.ln_1", "out"),  # GPT-J feeds one norm to both
        "mlp_out": ("transformer.h.{l}.mlp", "out"),
    }),
    "phi": ({}, True, {
        "attn_out": ("model.layers.{l}.self_attn", "out"),
        "mlp_in": ("model.layers.{l}.input_layernorm", "out"),
        "mlp_out": ("model.layers.{l}.mlp", "out"),
    }),
    "falcon": ({}, True, {
        "attn_out": ("transformer.h.{l}.self_attention", "out"),
        "mlp_in": ("transformer.h.{l}.input_layernorm", "out"),
        "mlp_out": ("transformer.h.{l}.mlp", "out"),
    }),
}  # fmt: skip


def hooks_of(arch: str) -> tuple[str, ...]:
    return tuple(h for h in ALL if not (FAMILIES[arch][1] and h == "resid_mid"))


def reference(model, arch: str, token_ids: list[int]) -> dict[str, np.ndarray]:
    """``hook -> (layer, token, width)`` of one unpadded prompt, from hand-placed hooks."""
    import torch

    sites = FAMILIES[arch][2]
    got: dict[tuple[str, int], torch.Tensor] = {}
    handles = []
    n = len(token_ids)

    def keep(key):
        def fn(t):
            t = t[0] if isinstance(t, tuple) else t
            got[key] = t.detach().reshape(n, -1).clone()  # OPT's fc1/fc2 see (token, width)

        return fn

    blocks = None
    for la in range(N_LAYERS):
        for hook, (path, kind) in sites.items():
            module = model.get_submodule(path.format(l=la))
            f = keep((hook, la))
            if kind == "in":
                handles.append(module.register_forward_pre_hook(lambda m, a, f=f: f(a[0])))
            else:
                handles.append(module.register_forward_hook(lambda m, a, o, f=f: f(o)))
        block_path = sites["attn_out"][0].format(l=la).rsplit(".", 1)[0]
        if arch == "bloom":  # self_attention.dense: the block is two levels up
            block_path = block_path.rsplit(".", 1)[0]
        blocks = block_path
    last = model.get_submodule(blocks)
    handles.append(
        last.register_forward_hook(lambda m, a, o: keep(("resid_post", N_LAYERS - 1))(o))
    )
    try:
        with torch.no_grad():
            hs = model(torch.tensor([token_ids]), output_hidden_states=True).hidden_states
    finally:
        for h in handles:
            h.remove()
    for la in range(N_LAYERS):
        got[("resid_pre", la)] = hs[la][0]
        if la < N_LAYERS - 1:
            got[("resid_post", la)] = hs[la + 1][0]
    out = {}
    for h in {h for h, _ in got}:
        t = torch.stack([got[(h, la)] for la in range(N_LAYERS)])
        out[h] = t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
    return out


@pytest.fixture
def family(request, tiny_model_factory):
    arch = request.param
    return arch, tiny_model_factory(arch, n_layers=N_LAYERS, **FAMILIES[arch][0])


@pytest.mark.parametrize("family", list(FAMILIES), indirect=True)
def test_every_hook_equals_hand_placed_hooks(family, mixed_prompts, tmp_path):
    arch, path = family
    hooks = hooks_of(arch)
    out = tmp_path / "c.zarr"
    rep = extract(model=path, prompts=mixed_prompts[:6], out=out, layers="all", hooks=hooks,
                  dtype="float32", device="cpu", progress=False, max_batch_tokens=64,
                  block_size=4)  # fmt: skip
    assert rep.complete and rep.plan.padding_fraction_batches > 0
    got = {h: read_set(out, "mixed", h) for h in hooks}
    model = load_reference_model(path)
    n_tok = got["resid_post"]["n_tokens"]
    for i in range(6):
        n = int(n_tok[i])
        ref = reference(model, arch, got["resid_post"]["token_id"][i, :n].tolist())
        assert set(ref) == set(hooks)
        for h in hooks:
            act = got[h]["act"][i]
            assert act.shape[-1] == 64, h  # mlp_in too: before the up-projection
            np.testing.assert_allclose(act[:, :n], ref[h], atol=1e-5, rtol=1e-5, err_msg=h)
            assert not act[:, n:].any()
        a = {h: got[h]["act"][i, :, :n].astype(np.float64) for h in hooks}
        # the residual identities (Gemma 2's sandwich norms sit inside attn_out / mlp_out)
        total = a["resid_pre"] + a["attn_out"] + a["mlp_out"]
        np.testing.assert_allclose(total, a["resid_post"], atol=2e-5, err_msg="resid_post")
        if "resid_mid" in hooks:
            mid = a["resid_pre"] + a["attn_out"]
            np.testing.assert_allclose(mid, a["resid_mid"], atol=2e-5, err_msg="resid_mid")
        for h in hooks:  # no hook is trivially zero or a copy of another
            assert np.abs(a[h]).max() > 1e-3, h
        assert not np.allclose(a["mlp_in"], a["resid_mid" if "resid_mid" in a else "resid_pre"])


@pytest.mark.parametrize("family", ["qwen2", "falcon", "gemma2", "mixtral"], indirect=True)
def test_bfloat16_one_prompt_per_pass_is_bit_identical(family, mixed_prompts, tmp_path):
    arch, path = family
    hooks = hooks_of(arch)
    out = tmp_path / "c.zarr"
    extract(model=path, prompts=mixed_prompts[:2], out=out, layers="all", hooks=hooks,
            dtype="bfloat16", device="cpu", max_batch_tokens=1, progress=False)  # fmt: skip
    model = load_reference_model(path, "bfloat16")
    got = {h: read_set(out, "mixed", h) for h in hooks}
    for i in range(2):
        n = int(got["resid_post"]["n_tokens"][i])
        ref = reference(model, arch, got["resid_post"]["token_id"][i, :n].tolist())
        for h in hooks:  # bit patterns
            stored = got[h]["act"][i, :, :n].view(np.int16)
            np.testing.assert_array_equal(stored, ref[h], err_msg=h)


@pytest.mark.parametrize(
    "family", ["qwen2", pytest.param("gpt2", marks=pytest.mark.slow)], indirect=True
)
def test_hf_hooks_equal_the_transformerlens_bridge(family, mixed_prompts, tmp_path):
    _, path = family
    kw = dict(model=path, prompts=mixed_prompts[:4], layers="all", dtype="float32",
              device="cpu", progress=False, max_batch_tokens=1)  # fmt: skip
    extract(out=tmp_path / "hf.zarr", hooks=ALL, backend="hf", **kw)
    extract(out=tmp_path / "tl.zarr", hooks=ALL, backend="tlens", **kw)
    for h in ALL:
        hf, tl = (
            read_set(tmp_path / "hf.zarr", "mixed", h),
            read_set(tmp_path / "tl.zarr", "mixed", h),
        )
        np.testing.assert_array_equal(hf["token_id"], tl["token_id"])
        np.testing.assert_allclose(hf["act"], tl["act"], atol=1e-4, rtol=1e-4, err_msg=h)


@pytest.mark.parametrize("arch", ["gptj", "gpt_neox", "phi", "falcon"])
def test_resid_mid_refused_on_parallel_blocks(arch, tiny_model_factory, mixed_prompts, tmp_path):
    path = tiny_model_factory(arch, n_layers=N_LAYERS)
    out = tmp_path / "c.zarr"
    msg = f"for hook resid_mid, got {arch} whose blocks run attention and MLP in parallel"
    for dry in (True, False):  # refused by the plan already, before weights are loaded
        with pytest.raises(InvalidArgumentError, match=msg):
            extract(model=path, prompts=mixed_prompts[:2], out=out, hooks=("resid_mid",),
                    device="cpu", progress=False, dry_run=dry)  # fmt: skip
    assert not out.exists()


def test_sublayer_hooks_refused_where_undefined(tiny_model_factory, mixed_prompts, tmp_path):
    """Post-LN OPT (OPT-350m's layout): the block normalises its residual stream itself."""
    import json

    src = tiny_model_factory("opt", n_layers=N_LAYERS)
    m = copy_checkpoint(src, tmp_path / "m")
    cfg = json.loads((m / "config.json").read_text())
    cfg["do_layer_norm_before"] = False
    (m / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "c.zarr"
    with pytest.raises(InvalidArgumentError, match=r"post-LN OPT .*use resid_pre/resid_post"):
        extract(model=m, prompts=mixed_prompts[:2], out=out, hooks=("attn_out",),
                device="cpu", progress=False)  # fmt: skip
    assert not out.exists()
    rep = extract(model=m, prompts=mixed_prompts[:2], out=out, hooks=("resid_post",),
                  device="cpu", progress=False)  # fmt: skip
    assert rep.complete  # the residual stream itself is still fine
