"""Random-initialised tiny checkpoints (Qwen2, GPT-2, Llama and the families of
:mod:`actstore.tinymodels._families`) with their own tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actstore.errors import InvalidArgumentError
from actstore.tinymodels._families import FAMILIES, family_config
from actstore.tinymodels._tokenizer import BOS_TOKEN, EOS_TOKEN, build_tokenizer

__all__ = ["ARCHS", "MARKER", "build_random_model", "init_weights", "make_config", "save_model"]

ARCHS = ("qwen2", "gpt2", "llama", *FAMILIES)
"""Supported architectures (``model_type`` names)."""
#: Build record written into every checkpoint directory (JSON, no code).
MARKER = "tinymodel.json"
_DTYPES = ("float32", "bfloat16", "float16")


def make_config(
    *,
    arch: str,
    vocab_size: int,
    n_layers: int,
    d_model: int,
    n_heads: int,
    n_kv_heads: int | None,
    d_mlp: int | None,
    max_position: int,
    bos_token_id: int | None,
    eos_token_id: int,
    dtype: str = "float32",
    d_embed: int | None = None,
) -> Any:
    """Return a transformers config of the given architecture and size.

    *d_embed* is the token-embedding width when it differs from the residual width *d_model*
    (only ``opt``: ``word_embed_proj_dim``); ``None`` means the same width.
    """
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    _check_positive(n_layers=n_layers, d_model=d_model, n_heads=n_heads, max_position=max_position)
    if d_model % n_heads:
        raise InvalidArgumentError(
            f"expected d_model divisible by n_heads, got d_model={d_model}, n_heads={n_heads}; "
            "pick n_heads dividing d_model"
        )
    if (d_model // n_heads) % 2:
        raise InvalidArgumentError(
            f"expected an even head size for rotary embeddings, got {d_model // n_heads}; "
            "change d_model or n_heads"
        )
    kv = n_kv_heads if n_kv_heads is not None else max(1, n_heads // 2)
    if n_heads % kv:
        raise InvalidArgumentError(
            f"expected n_heads divisible by n_kv_heads, got {n_heads} and {kv}; pick a divisor"
        )
    mlp = d_mlp if d_mlp is not None else 4 * d_model
    common = {"vocab_size": vocab_size, "bos_token_id": bos_token_id, "eos_token_id": eos_token_id}
    common["pad_token_id"] = eos_token_id
    if d_embed is not None and d_embed != d_model:
        if arch != "opt":
            raise InvalidArgumentError(
                f"expected d_embed only for arch 'opt' (word_embed_proj_dim), got arch {arch!r}; "
                "leave d_embed unset"
            )
        _check_positive(d_embed=d_embed)
    if arch in FAMILIES:
        cfg = family_config(
            arch,
            n_layers=n_layers,
            d_model=d_model,
            n_heads=n_heads,
            kv=kv,
            mlp=mlp,
            max_position=max_position,
            common=common,
            d_embed=d_embed,
        )
    elif arch == "gpt2":
        cfg = GPT2Config(
            n_layer=n_layers,
            n_embd=d_model,
            n_head=n_heads,
            n_inner=mlp,
            n_positions=max_position,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **common,
        )
    elif arch in ("qwen2", "llama"):
        cls = Qwen2Config if arch == "qwen2" else LlamaConfig
        cfg = cls(
            num_hidden_layers=n_layers,
            hidden_size=d_model,
            num_attention_heads=n_heads,
            num_key_value_heads=kv,
            intermediate_size=mlp,
            max_position_embeddings=max_position,
            tie_word_embeddings=False,
            **common,
        )
    else:
        raise InvalidArgumentError(
            f"expected arch in {list(ARCHS)}, got {arch!r}; pass one of those"
        )
    cfg.dtype = dtype
    return cfg


def init_weights(model: Any, *, seed: int, std: float) -> None:
    """Fill every parameter from a private generator seeded with ``seed``, in sorted name order.

    Matrices and biases ~ N(0, std²) (so Qwen2's q/k/v biases are non-zero), norm gains
    1 + N(0, std²). Independent of transformers' own init code and of the global torch RNG, so a
    seed gives the same weights across library versions and call sites.
    """
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32) * std
            is_norm = "norm" in name or ".ln_" in name or name.startswith("ln_")
            if is_norm and name.endswith("weight"):
                noise += 1.0
            p.copy_(noise.to(p.dtype))


def build_random_model(
    out_dir: str | Path,
    *,
    arch: str = "qwen2",
    n_layers: int = 4,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int | None = None,
    d_mlp: int | None = None,
    vocab_size: int = 512,
    max_position: int = 1024,
    seed: int = 0,
    init_std: float = 0.1,
    dtype: str = "float32",
    corpus: Any = None,
    add_bos: bool | None = None,
    d_embed: int | None = None,
) -> Path:
    """Write a random-initialised causal LM checkpoint with its tokenizer into ``out_dir``.

    The directory holds ``config.json``, ``model.safetensors``, ``generation_config.json``,
    ``tokenizer.json``, ``tokenizer_config.json`` and ``tinymodel.json`` (the build parameters), and
    loads offline with ``AutoModelForCausalLM.from_pretrained(out_dir)``. Same arguments give
    byte-identical files.

    Parameters
    ----------
    out_dir : str or Path
        Destination directory (created if needed; existing files are overwritten).
    arch : str
        Architecture, one of :data:`ARCHS`: ``qwen2``, ``gpt2``, ``llama`` or a family of
        :data:`actstore.tinymodels._families.FAMILIES` (OPT, GPT-NeoX, GPT-J, Phi, Falcon, BLOOM,
        Mixtral, Qwen2-MoE, OLMoE, Gemma 2, Mistral, Phi-3, StableLM). Qwen2 has q/k/v biases
        (randomised, non-zero); Llama prepends a BOS token.
    n_layers, d_model, n_heads : int
        Depth (decoder blocks), residual width (d_model) and attention heads.
    n_kv_heads : int, optional
        Key/value heads for Qwen2/Llama (grouped-query attention); default ``n_heads // 2``.
    d_mlp : int, optional
        MLP width; default ``4 * d_model``.
    vocab_size : int
        Tokenizer and embedding size.
    max_position : int
        Context length (``max_position_embeddings`` / ``n_positions``).
    seed : int
        Weight seed (the tokenizer is trained deterministically and does not depend on it).
    init_std : float
        Standard deviation of the random weights (0.1 keeps attention visibly non-uniform at
        d_model 64).
    dtype : {"float32", "bfloat16", "float16"}
        Dtype of the saved weights (and ``config.dtype``).
    corpus : iterable of str, optional
        Tokenizer training text (see :func:`build_tokenizer`).
    add_bos : bool, optional
        Tokenizer prepends BOS; default only for Llama.
    d_embed : int, optional
        Token-embedding width when it differs from *d_model* (``opt`` only, as OPT-350m's
        ``word_embed_proj_dim``).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    InvalidArgumentError
        If ``arch`` or ``dtype`` is not one of those listed, a size is not a positive integer,
        ``d_model`` is not divisible by ``n_heads`` (or ``n_heads`` by ``n_kv_heads``), a rotary
        head size is odd, or ``d_embed`` is given for another arch than ``opt``.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if arch not in ARCHS:
        raise InvalidArgumentError(
            f"expected arch in {list(ARCHS)}, got {arch!r}; pass one of those"
        )
    if dtype not in _DTYPES:
        raise InvalidArgumentError(f"expected dtype in {list(_DTYPES)}, got {dtype!r}; pass one")
    out = Path(out_dir)
    build_tokenizer(
        out,
        corpus=corpus,
        vocab_size=vocab_size,
        arch=arch,
        add_bos=add_bos,
        model_max_length=max_position,
    )
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    eos_id = tok.token_to_id(EOS_TOKEN)
    bos_name = json.loads((out / "tokenizer_config.json").read_text())["bos_token"]
    bos_id = tok.token_to_id(bos_name) if bos_name else None
    params = {
        "arch": arch,
        "n_layers": n_layers,
        "d_model": d_model,
        "n_heads": n_heads,
        "n_kv_heads": n_kv_heads,
        "d_mlp": d_mlp,
        "vocab_size": tok.get_vocab_size(),
        "max_position": max_position,
    }
    if d_embed is not None:
        params["d_embed"] = d_embed
    cfg = make_config(**params, bos_token_id=bos_id, eos_token_id=eos_id, dtype=dtype)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    init_weights(model, seed=seed, std=init_std)
    model = model.to(getattr(torch, dtype)).eval()
    save_model(model, out)
    record = {"kind": "random", **params, "seed": seed, "init_std": init_std, "dtype": dtype}
    record["bos_token"] = BOS_TOKEN if bos_id is not None and bos_name == BOS_TOKEN else bos_name
    (out / MARKER).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out


def save_model(model: Any, out: Path) -> None:
    """``model.save_pretrained(out)`` without transformers' progress bar."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _check_positive(**values: int) -> None:
    for key, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InvalidArgumentError(f"expected {key} to be a positive int, got {v!r}; pass one")
