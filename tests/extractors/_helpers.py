"""Test helpers: prompt sets, cache readers and independent references (plain transformers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def mixed_prompt_set(n: int = 24, seed: int = 0, name: str = "mixed"):
    """Prompts of very different lengths (so batches are padded), with labels and spans."""
    from actstore.prompts import Prompt, PromptSet

    rng = np.random.default_rng(seed)
    words = ["seven", "times", "eight", "equals", "the", "product", "of", "and", "is", "mass"]
    prompts = []
    for i in range(n):
        x, y = int(rng.integers(2, 20)), int(rng.integers(2, 20))
        filler = " ".join(rng.choice(words, size=int(rng.integers(0, 12))))
        head = f"{filler} " if filler else ""
        text = f"{head}{x} times {y} equals {x * y}"
        start = len(text) - len(str(x * y))
        prompts.append(
            Prompt(
                text=text,
                labels={"x": x, "y": y, "value": x * y, "idx": i},
                spans={"answer": (start, len(text))},
            )
        )
    return PromptSet(name=name, prompts=tuple(prompts))


def read_set(out: str | Path, set_name: str, var: str = "resid_post") -> dict[str, np.ndarray]:
    """Raw arrays of a prompt set, read with zarr (independent of the extractor)."""
    import zarr

    import actstore.store  # registers the bfloat16 data type

    assert actstore.store
    g = zarr.open_group(str(out), mode="r")[set_name]
    return {
        "act": np.asarray(g[var][:]),
        "n_tokens": np.asarray(g["n_tokens"][:]),
        "token_id": np.asarray(g["token_id"][:]),
        "layer": np.asarray(g["layer"][:]),
    }


def final_norm_owner(model) -> tuple[object, str]:
    base = model.base_model
    for attr in ("norm", "ln_f", "final_layernorm"):
        if hasattr(base, attr):
            return base, attr
    raise AssertionError("no final norm found")


def load_reference_model(path: Path, dtype: str = "float32"):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))
    model.eval()
    return model


def reference_resid_post(model, token_ids: list[int], layers) -> np.ndarray:
    """(layer, token, d_model) block outputs of one unpadded prompt, as numpy (float32 view).

    Blocks before the last come from ``output_hidden_states`` (``hidden_states[l + 1]``); the
    last block's output is taken from a second forward with the final norm replaced by an
    identity, since ``hidden_states[-1]`` has the final norm applied.
    """
    import torch

    ids = torch.tensor([token_ids], device=model.device)
    owner, attr = final_norm_owner(model)
    n_layers = model.config.num_hidden_layers
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states
        norm = getattr(owner, attr)
        setattr(owner, attr, torch.nn.Identity())
        try:
            last = model(ids, output_hidden_states=True).hidden_states[-1]
        finally:
            setattr(owner, attr, norm)
    out = [(last if layer == n_layers - 1 else hs[layer + 1])[0] for layer in layers]
    out = [t.cpu() for t in out]
    return torch.stack(out).float().numpy() if out[0].dtype != torch.bfloat16 else _bits(out)


def _bits(ts) -> np.ndarray:
    import ml_dtypes
    import torch

    return torch.stack(ts).view(torch.int16).numpy().view(ml_dtypes.bfloat16)


#: config.json of Qwen2.5-32B (the reference study's model): 64 layers, d_model 5120, bf16.
QWEN25_32B_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "hidden_act": "silu",
    "hidden_size": 5120,
    "initializer_range": 0.02,
    "intermediate_size": 27648,
    "max_position_embeddings": 131072,
    "max_window_layers": 64,
    "model_type": "qwen2",
    "num_attention_heads": 40,
    "num_hidden_layers": 64,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 1000000.0,
    "sliding_window": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 152064,
}


def copy_checkpoint(src: Path, dst: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """Copy a checkpoint directory, leaving out files whose names are in *skip*."""
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in skip:
            shutil.copy2(f, dst / f.name)
    return dst
