"""Session-scoped tiny model checkpoints (pytest plugin loaded by tests/conftest.py).

Each fixture builds its checkpoint once per test session (once per xdist worker) into a temporary
directory: a random-initialised model with 4 layers, d_model 64, 4 heads and a ~400-token
byte-level tokenizer, seed 0, float32. ``tiny_model_factory(arch, **kwargs)`` builds other variants
(another seed, depth or dtype), also cached per session.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: Shared shape of the fixture models (small enough that the whole suite stays fast).
TINY = {"n_layers": 4, "d_model": 64, "n_heads": 4, "vocab_size": 512, "seed": 0}


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Return ``build(arch="qwen2", **kwargs) -> Path``, building each distinct checkpoint once."""
    built: dict[str, Path] = {}

    def build(arch: str = "qwen2", **kwargs: Any) -> Path:
        from actstore.tinymodels import build_random_model

        params = {**TINY, **kwargs, "arch": arch}
        key = json.dumps(params, sort_keys=True)
        if key not in built:
            out = tmp_path_factory.mktemp(f"tiny_{arch}")
            built[key] = build_random_model(out, **params)
        return built[key]

    return build


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tiny_model_factory: Callable[..., Path]) -> Path:
    """Random Qwen2 (4 layers, d_model 64, GQA 4/2 heads, non-zero q/k/v biases, no BOS)."""
    return tiny_model_factory("qwen2")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tiny_model_factory: Callable[..., Path]) -> Path:
    """Random GPT-2 (4 layers, d_model 64, learned positions, tied embeddings, no BOS)."""
    return tiny_model_factory("gpt2")


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_model_factory: Callable[..., Path]) -> Path:
    """Random Llama (4 layers, d_model 64, GQA 4/2 heads; the tokenizer prepends a BOS token)."""
    return tiny_model_factory("llama")
