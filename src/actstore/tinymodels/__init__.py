"""Tiny, local, seeded causal LMs for tests and the demo (torch side).

Everything here builds checkpoint directories (config.json, model.safetensors, tokenizer files)
that ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained`` load offline.
torch and transformers are imported inside the functions, so importing this package is cheap, but
it is never imported by ``actstore`` itself.

- :func:`build_tokenizer`: byte-level BPE trained offline, Qwen2's pipeline.
- :func:`build_random_model`: random-initialised Qwen2 / GPT-2 / Llama (:data:`ARCHS`) for tests.
- :func:`train_tiny_model`: the demo's Qwen2, trained on the prompt generators' text.
- :func:`build_random_twin`: the same model untrained (the control).
- :func:`get_demo_model`: trained (or twin) model from a cache directory
  (:func:`default_cache_dir`), built on first use.
"""

from actstore.tinymodels._cache import default_cache_dir, get_demo_model
from actstore.tinymodels._random import ARCHS, build_random_model
from actstore.tinymodels._tokenizer import build_tokenizer
from actstore.tinymodels._train import build_random_twin, train_tiny_model

__all__ = [
    "ARCHS",
    "build_random_model",
    "build_random_twin",
    "build_tokenizer",
    "default_cache_dir",
    "get_demo_model",
    "train_tiny_model",
]
