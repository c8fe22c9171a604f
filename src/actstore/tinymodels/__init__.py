"""Tiny, local, seeded causal LMs for tests and the demo (torch side).

Everything here builds checkpoint directories (config.json, model.safetensors, tokenizer files)
that ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained`` load offline.
torch and transformers are imported inside the functions, so importing this package is cheap, but
it is never imported by ``actstore`` itself.
"""

from actstore.tinymodels._random import ARCHS, build_random_model
from actstore.tinymodels._tokenizer import BOS_TOKEN, EOS_TOKEN, build_tokenizer, default_corpus

__all__ = [
    "ARCHS",
    "BOS_TOKEN",
    "EOS_TOKEN",
    "build_random_model",
    "build_tokenizer",
    "default_corpus",
]
