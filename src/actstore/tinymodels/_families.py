"""Transformers configs of the tiny random models, one builder per decoder family.

Each family keeps its distinguishing layout at toy size, so the extractor is tested on what makes
the family different, not only on its name:

- ``opt``: the embedding width (``word_embed_proj_dim``, the ``d_embed`` argument) may differ from
  the residual width, with ``project_in`` / ``project_out`` around the blocks (as OPT-350m);
- ``gpt_neox``, ``gptj``, ``phi``, ``falcon``: attention and MLP in parallel on one input;
- ``mixtral``, ``qwen2_moe``, ``olmoe``: mixture-of-experts MLP blocks (4 experts, top 2;
  Qwen2-MoE adds a gated shared expert);
- ``gemma2``: sandwich norms, scaled embeddings, logit soft-capping and sliding-window layers;
- ``bloom``: ALiBi positions and a layer norm right after the embedding;
- ``mistral``, ``phi3``, ``stablelm``: Llama relatives (sliding window, fused qkv, partial rotary).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["FAMILIES", "family_config"]

_NO_DROPOUT = {"attention_dropout": 0.0}


def _llama_like(cls_name: str, **extra: Any) -> Callable[..., Any]:
    def build(*, n_layers: int, d_model: int, n_heads: int, kv: int, mlp: int, max_position: int,
              common: dict[str, Any], **_: Any) -> Any:  # fmt: skip
        import transformers

        cls = getattr(transformers, cls_name)
        if cls_name.startswith("Gemma"):
            extra.setdefault("head_dim", d_model // n_heads)  # Gemma's default is 256
        return cls(
            num_hidden_layers=n_layers,
            hidden_size=d_model,
            num_attention_heads=n_heads,
            num_key_value_heads=kv,
            intermediate_size=mlp,
            max_position_embeddings=max_position,
            tie_word_embeddings=False,
            **{**extra, **common},
        )

    return build


def _opt(*, n_layers: int, d_model: int, n_heads: int, mlp: int, max_position: int,
         common: dict[str, Any], d_embed: int | None = None, **_: Any) -> Any:  # fmt: skip
    from transformers import OPTConfig

    return OPTConfig(
        num_hidden_layers=n_layers,
        hidden_size=d_model,
        word_embed_proj_dim=d_embed if d_embed is not None else d_model,
        num_attention_heads=n_heads,
        ffn_dim=mlp,
        max_position_embeddings=max_position,
        do_layer_norm_before=True,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        layerdrop=0.0,
        **common,
    )


def _gpt_neox(*, n_layers: int, d_model: int, n_heads: int, mlp: int, max_position: int,
              common: dict[str, Any], **_: Any) -> Any:  # fmt: skip
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        num_hidden_layers=n_layers,
        hidden_size=d_model,
        num_attention_heads=n_heads,
        intermediate_size=mlp,
        max_position_embeddings=max_position,
        use_parallel_residual=True,
        rotary_pct=0.5,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        tie_word_embeddings=False,
        **common,
    )


def _gptj(*, n_layers: int, d_model: int, n_heads: int, mlp: int, max_position: int,
          common: dict[str, Any], **_: Any) -> Any:  # fmt: skip
    from transformers import GPTJConfig

    return GPTJConfig(
        n_layer=n_layers,
        n_embd=d_model,
        n_head=n_heads,
        n_inner=mlp,
        n_positions=max_position,
        rotary_dim=(d_model // n_heads) // 2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=False,
        **common,
    )


def _phi(*, n_layers: int, d_model: int, n_heads: int, kv: int, mlp: int, max_position: int,
         common: dict[str, Any], **_: Any) -> Any:  # fmt: skip
    from transformers import PhiConfig

    return PhiConfig(
        num_hidden_layers=n_layers,
        hidden_size=d_model,
        num_attention_heads=n_heads,
        num_key_value_heads=kv,
        intermediate_size=mlp,
        max_position_embeddings=max_position,
        partial_rotary_factor=0.5,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attention_dropout=0.0,
        tie_word_embeddings=False,
        **common,
    )


def _falcon(*, n_layers: int, d_model: int, n_heads: int, max_position: int,
            common: dict[str, Any], **_: Any) -> Any:  # fmt: skip
    from transformers import FalconConfig

    return FalconConfig(
        num_hidden_layers=n_layers,
        hidden_size=d_model,
        num_attention_heads=n_heads,
        max_position_embeddings=max_position,
        parallel_attn=True,
        new_decoder_architecture=False,
        multi_query=True,
        alibi=False,
        bias=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        tie_word_embeddings=False,
        **common,
    )


def _bloom(*, n_layers: int, d_model: int, n_heads: int, common: dict[str, Any],
           **_: Any) -> Any:  # fmt: skip
    from transformers import BloomConfig

    return BloomConfig(
        n_layer=n_layers,
        hidden_size=d_model,
        n_head=n_heads,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        tie_word_embeddings=False,
        **common,
    )


def _qwen2_moe(*, n_layers: int, d_model: int, n_heads: int, kv: int, mlp: int,
               max_position: int, common: dict[str, Any], **_: Any) -> Any:  # fmt: skip
    from transformers import Qwen2MoeConfig

    return Qwen2MoeConfig(
        num_hidden_layers=n_layers,
        hidden_size=d_model,
        num_attention_heads=n_heads,
        num_key_value_heads=kv,
        intermediate_size=mlp,
        moe_intermediate_size=max(1, mlp // 4),
        shared_expert_intermediate_size=max(1, mlp // 2),
        num_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=max_position,
        tie_word_embeddings=False,
        **common,
    )


def _olmoe(*, n_layers: int, d_model: int, n_heads: int, kv: int, mlp: int, max_position: int,
           common: dict[str, Any], **_: Any) -> Any:  # fmt: skip
    from transformers import OlmoeConfig

    return OlmoeConfig(
        num_hidden_layers=n_layers,
        hidden_size=d_model,
        num_attention_heads=n_heads,
        num_key_value_heads=kv,
        intermediate_size=max(1, mlp // 4),
        num_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=max_position,
        tie_word_embeddings=False,
        **common,
    )


#: family name (``model_type``) -> config builder
FAMILIES: dict[str, Callable[..., Any]] = {
    "opt": _opt,
    "gpt_neox": _gpt_neox,
    "gptj": _gptj,
    "phi": _phi,
    "falcon": _falcon,
    "bloom": _bloom,
    "mixtral": _llama_like("MixtralConfig", num_local_experts=4, num_experts_per_tok=2),
    "qwen2_moe": _qwen2_moe,
    "olmoe": _olmoe,
    "gemma2": _llama_like("Gemma2Config", sliding_window=8, **_NO_DROPOUT),
    "mistral": _llama_like("MistralConfig", sliding_window=8, **_NO_DROPOUT),
    "phi3": _llama_like("Phi3Config", resid_pdrop=0.0, embd_pdrop=0.0, **_NO_DROPOUT),
    "stablelm": _llama_like("StableLmConfig", partial_rotary_factor=0.5, hidden_dropout=0.0),
}


def family_config(arch: str, **kwargs: Any) -> Any:
    """The transformers config of family *arch* (a key of :data:`FAMILIES`)."""
    return FAMILIES[arch](**kwargs)
