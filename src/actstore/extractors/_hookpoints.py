"""Where each hook point of the ``hf`` backend sits inside a decoder block, per family.

TransformerLens names, on every family the same meaning (see docs/hooks.md):

- ``resid_pre``: the block's input (the residual stream entering it);
- ``attn_out``: the attention sublayer's output as added to the residual stream (after the output
  projection; Gemma 2: after ``post_attention_layernorm``; BLOOM: ``self_attention.dense``, whose
  module adds the residual itself);
- ``resid_mid``: the residual stream between attention and MLP, ``resid_pre + attn_out`` (only
  blocks that run attention, then MLP; parallel blocks have none and are refused);
- ``mlp_in``: the MLP's input, after its norm (width d_model: before the up-projection);
- ``mlp_out``: the MLP sublayer's output as added to the residual stream (mixture-of-experts: the
  sparse block's output, shared expert included; Gemma 2: after ``post_feedforward_layernorm``);
- ``resid_post``: the block's output.

Each site is a submodule path inside the block and ``"in"`` (first positional input, by a forward
pre-hook) or ``"out"`` (first output, by a forward hook). The table covers the families the tests
build; other families get ``resid_pre`` / ``resid_post`` only and are refused the rest.
"""

from __future__ import annotations

from typing import Any

from actstore.errors import InvalidArgumentError

__all__ = [
    "SUBLAYER_HOOKS",
    "check_config",
    "check_model_dir",
    "family_note",
    "hook_sites",
    "is_parallel",
]

#: hook points inside a block (``resid_pre`` / ``resid_post`` are the block's own input/output)
SUBLAYER_HOOKS = ("attn_out", "resid_mid", "mlp_in", "mlp_out")

Site = tuple[str, str]  # (submodule path inside the block, "in" | "out")

_LLAMA: dict[str, Site] = {
    "attn_out": ("self_attn", "out"),
    "resid_mid": ("post_attention_layernorm", "in"),
    "mlp_in": ("mlp", "in"),
    "mlp_out": ("mlp", "out"),
}

#: model_type -> hook -> site (``resid_mid`` absent where attention and MLP run in parallel)
_SITES: dict[str, dict[str, Site]] = {
    **{
        t: _LLAMA
        for t in ("llama", "qwen2", "mistral", "mixtral", "qwen2_moe", "olmoe", "phi3", "stablelm")
    },
    "gpt2": {
        "attn_out": ("attn", "out"),
        "resid_mid": ("ln_2", "in"),
        "mlp_in": ("mlp", "in"),
        "mlp_out": ("mlp", "out"),
    },
    "opt": {  # pre-LN OPT; fc1/fc2 see (batch * token, d): reshaped back by the backend
        "attn_out": ("self_attn", "out"),
        "resid_mid": ("final_layer_norm", "in"),
        "mlp_in": ("fc1", "in"),
        "mlp_out": ("fc2", "out"),
    },
    "gpt_neox": {
        "attn_out": ("attention", "out"),
        "resid_mid": ("post_attention_layernorm", "in"),
        "mlp_in": ("mlp", "in"),
        "mlp_out": ("mlp", "out"),
    },
    "gptj": {"attn_out": ("attn", "out"), "mlp_in": ("mlp", "in"), "mlp_out": ("mlp", "out")},
    "phi": {"attn_out": ("self_attn", "out"), "mlp_in": ("mlp", "in"), "mlp_out": ("mlp", "out")},
    "falcon": {
        "attn_out": ("self_attention", "out"),
        "resid_mid": ("post_attention_layernorm", "in"),
        "mlp_in": ("mlp", "in"),
        "mlp_out": ("mlp", "out"),  # Falcon adds attention to it in place: captured as a copy
    },
    "bloom": {  # BLOOM's attention and MLP modules add the residual themselves
        "attn_out": ("self_attention.dense", "out"),
        "resid_mid": ("post_attention_layernorm", "in"),
        "mlp_in": ("mlp", "in"),
        "mlp_out": ("mlp.dense_4h_to_h", "out"),
    },
    "gemma2": {  # sandwich norms: what is added to the residual is the post-norm's output
        "attn_out": ("post_attention_layernorm", "out"),
        "resid_mid": ("pre_feedforward_layernorm", "in"),
        "mlp_in": ("mlp", "in"),
        "mlp_out": ("post_feedforward_layernorm", "out"),
    },
}

#: per family, what the hooks mean where it differs from a plain pre-norm block
_NOTES = {
    "gemma2": "sandwich norms: attn_out and mlp_out are the outputs of post_attention_layernorm "
    "and post_feedforward_layernorm (what is added to the residual stream)",
    "bloom": "attn_out = self_attention.dense output, mlp_out = mlp.dense_4h_to_h output (the "
    "modules add the residual themselves)",
    "opt": "mlp_in = fc1 input, mlp_out = fc2 output",
    "mixtral": "mlp_out = the sparse MoE block's output",
    "qwen2_moe": "mlp_out = the sparse MoE block's output, shared expert included",
    "olmoe": "mlp_out = the sparse MoE block's output",
}


def is_parallel(config: Any) -> bool:
    """Whether the blocks of *config*'s family run attention and MLP on one input in parallel."""
    t = getattr(config, "model_type", None)
    if t in ("gptj", "phi"):
        return True
    if t in ("gpt_neox", "stablelm"):
        return bool(getattr(config, "use_parallel_residual", False))
    if t == "falcon":
        return bool(config.parallel_attn or config.new_decoder_architecture)
    return False


def family_note(config: Any) -> str:
    """One line on what the sub-layer hooks mean in *config*'s family."""
    t = getattr(config, "model_type", None)
    note = _NOTES.get(t, "attn_out / mlp_out: the sublayer outputs added to the residual stream")
    if is_parallel(config):
        note += "; attention and MLP run in parallel on the block input: no resid_mid"
    return f"{t}: {note}"


def _unsupported(t: str | None, config: Any) -> str | None:
    """Why the sub-layer hooks of this config are not defined, or None when they are."""
    if t not in _SITES:
        return f"no sub-layer hook table for model_type {t!r} (known: {', '.join(sorted(_SITES))})"
    if t == "opt" and not getattr(config, "do_layer_norm_before", True):
        return "post-LN OPT (do_layer_norm_before=false) normalises the residual stream itself"
    if t == "bloom" and getattr(config, "apply_residual_connection_post_layernorm", False):
        return "BLOOM with apply_residual_connection_post_layernorm adds a normalised residual"
    return None


def check_config(config: Any, hooks: tuple[str, ...]) -> None:
    """Refuse sub-layer hooks that *config*'s family does not define (before loading weights).

    Raises
    ------
    InvalidArgumentError
        A sub-layer hook on a family without a table, or ``resid_mid`` on a parallel family.
    """
    wanted = [h for h in hooks if h in SUBLAYER_HOOKS]
    if not wanted:
        return
    t = getattr(config, "model_type", None)
    why = _unsupported(t, config)
    if why is not None:
        raise InvalidArgumentError(
            f"expected a family whose {'/'.join(wanted)} --backend hf knows, got {why}; use "
            "resid_pre/resid_post, or --backend tlens (hook_attn_out, hook_mlp_out, ...)"
        )
    if "resid_mid" in wanted and is_parallel(config):
        raise InvalidArgumentError(
            f"expected blocks that run attention then MLP for hook resid_mid, got {t} whose "
            "blocks run attention and MLP in parallel on one input (no residual stream between "
            "them); drop resid_mid: resid_post = resid_pre + attn_out + mlp_out"
        )


def check_model_dir(path: str, hooks: tuple[str, ...]) -> None:
    """:func:`check_config` on the transformers config of checkpoint *path*."""
    if not any(h in SUBLAYER_HOOKS for h in hooks):
        return
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception:  # unknown model_type: no transformers config, and so no table either
        import json
        from pathlib import Path
        from types import SimpleNamespace

        raw = json.loads((Path(path) / "config.json").read_text())
        config = SimpleNamespace(model_type=raw.get("model_type"))
    check_config(getattr(config, "text_config", None) or config, hooks)


def hook_sites(model: Any, block: Any, hooks: tuple[str, ...]) -> list[tuple[str, Any, str]]:
    """``[(hook, submodule, "in" | "out")]`` for the sub-layer hooks of *hooks* in *block*.

    Raises
    ------
    InvalidArgumentError
        See :func:`check_config`; also a block lacking the submodule the table names.
    """
    wanted = [h for h in hooks if h in SUBLAYER_HOOKS]
    if not wanted:
        return []
    check_config(model.config, hooks)
    t = model.config.model_type
    out = []
    for h in wanted:
        path, kind = _SITES[t][h]
        try:
            module = block.get_submodule(path)
        except AttributeError as exc:
            raise InvalidArgumentError(
                f"expected submodule {path!r} in {type(block).__name__} for hook {h}, got none; "
                "this transformers version lays the block out differently: use --backend tlens"
            ) from exc
        out.append((h, module, kind))
    return out
