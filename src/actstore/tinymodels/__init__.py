"""Tiny, local, seeded causal LMs for tests and the demo (torch side).

Everything here builds checkpoint directories (config.json, model.safetensors, tokenizer files)
that ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained`` load offline.
torch and transformers are imported inside the functions, so importing this package is cheap, but
it is never imported by ``actstore`` itself.

- :func:`build_tokenizer`: byte-level BPE trained offline, Qwen2's pipeline.
- :func:`build_random_model`: random-initialised Qwen2 / GPT-2 / Llama for tests.
- :func:`train_tiny_model`: the demo's Qwen2, trained on the prompt generators' text.
- :func:`build_random_twin`: the same model untrained (the control).
- :func:`get_demo_model`: trained (or twin) model from a cache directory, built on first use.
"""

from actstore.tinymodels._cache import default_cache_dir, demo_model_key, get_demo_model
from actstore.tinymodels._random import ARCHS, build_random_model, init_weights
from actstore.tinymodels._tokenizer import BOS_TOKEN, EOS_TOKEN, build_tokenizer, default_corpus
from actstore.tinymodels._train import (
    DEFAULT_DATA,
    TRAINING_LOG,
    build_random_twin,
    train_tiny_model,
    training_texts,
)

__all__ = [
    "ARCHS",
    "BOS_TOKEN",
    "DEFAULT_DATA",
    "EOS_TOKEN",
    "TRAINING_LOG",
    "build_random_model",
    "build_random_twin",
    "build_tokenizer",
    "default_cache_dir",
    "default_corpus",
    "demo_model_key",
    "get_demo_model",
    "init_weights",
    "train_tiny_model",
    "training_texts",
]
