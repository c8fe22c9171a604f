"""actstore.extractors: run a local model once and stream per-token activations into the store.

``import actstore.extractors`` stays light; torch and transformers load when :func:`extract` runs.
"""

from actstore.extractors._batching import Batch, plan_batches
from actstore.extractors._config import ModelConfig, read_model_config
from actstore.extractors._extract import DEFAULT_MAX_BATCH_TOKENS, extract, parse_shard
from actstore.extractors._fingerprint import tokenizer_fingerprint, weights_fingerprint
from actstore.extractors._genconfig import GenerateConfig
from actstore.extractors._hooks import BACKENDS, HF_HOOKS, resolve_hooks, tlens_hook
from actstore.extractors._layers import resolve_layers
from actstore.extractors._plan import ExtractionPlan
from actstore.extractors._report import ExtractionReport

__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_BATCH_TOKENS",
    "HF_HOOKS",
    "Batch",
    "ExtractionPlan",
    "ExtractionReport",
    "GenerateConfig",
    "ModelConfig",
    "extract",
    "parse_shard",
    "plan_batches",
    "read_model_config",
    "resolve_hooks",
    "resolve_layers",
    "tlens_hook",
    "tokenizer_fingerprint",
    "weights_fingerprint",
]
