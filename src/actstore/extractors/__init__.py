"""actstore.extractors: run a local model once and stream per-token activations into the store.

``import actstore.extractors`` stays light; torch and transformers load when :func:`extract` runs.
Build an :class:`ExtractConfig` (or pass its fields as keywords) and call :func:`extract`; the
command line, ``actstore run`` and ``actstore repair`` build the same config.
"""

from actstore.extractors._backend import Backend
from actstore.extractors._config import ModelConfig, read_model_config
from actstore.extractors._extract import extract
from actstore.extractors._extract_config import ExtractConfig
from actstore.extractors._fingerprint import tokenizer_fingerprint, weights_fingerprint
from actstore.extractors._genconfig import GenerateConfig
from actstore.extractors._hooks import HF_HOOKS
from actstore.extractors._layers import parse_layers, resolve_layers
from actstore.extractors._plan import ExtractionPlan
from actstore.extractors._report import ExtractionReport
from actstore.extractors._verify_model import (
    ModelVerifyReport,
    format_model_report,
    parse_sample,
    verify_against_model,
)

__all__ = [
    "HF_HOOKS",
    "Backend",
    "ExtractConfig",
    "ExtractionPlan",
    "ExtractionReport",
    "GenerateConfig",
    "ModelConfig",
    "ModelVerifyReport",
    "extract",
    "format_model_report",
    "parse_layers",
    "parse_sample",
    "read_model_config",
    "resolve_layers",
    "tokenizer_fingerprint",
    "verify_against_model",
    "weights_fingerprint",
]
