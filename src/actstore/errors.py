"""Every error actstore raises on purpose.

Each class inherits :class:`ActstoreError` and the builtin exception that fits, so callers can catch
either. Messages follow one shape: ``expected X, got Y; do Z``. The command line prints
``actstore: error: <message>`` for these and exits with status 2, without a traceback unless
``--debug`` is given.
"""

from __future__ import annotations

__all__ = [
    "ActstoreError",
    "ActstoreWarning",
    "ConfigError",
    "CorruptCacheError",
    "DegenerateTargetError",
    "DiskFullError",
    "ExtractionError",
    "FingerprintMismatchError",
    "IncompleteCacheError",
    "IncompleteCacheWarning",
    "InvalidArgumentError",
    "MissingExtraError",
    "ModelLoadError",
    "NotACacheError",
    "ProbeMismatchError",
    "PromptFileError",
    "ReadOnlyError",
    "SampleLossWarning",
    "SchemaVersionError",
    "StorageError",
    "StoreNotFoundError",
    "UndefinedMetricWarning",
    "UnknownNameError",
    "UnsafeCacheError",
]


class ActstoreError(Exception):
    """Base class of every error actstore raises on purpose (user errors, bad data)."""

    exit_code: int = 2


class InvalidArgumentError(ActstoreError, ValueError):
    """An argument has a value outside what is allowed."""


class StoreNotFoundError(ActstoreError, FileNotFoundError):
    """No cache exists at the given path or URL."""


class NotACacheError(ActstoreError, ValueError):
    """Something exists at the path, but it is not an actstore cache."""


class SchemaVersionError(ActstoreError, ValueError):
    """The cache was written with a schema version this actstore cannot read."""


class UnknownNameError(ActstoreError, LookupError):
    """A prompt set, layer, variable, target, span, probe or generator name does not exist."""

    def __str__(self) -> str:  # LookupError subclasses would otherwise print repr() like KeyError
        return str(self.args[0]) if self.args else ""


class IncompleteCacheError(ActstoreError, RuntimeError):
    """An operation needs a complete cache (or prompt set) and some blocks are missing."""


class ActstoreWarning(UserWarning):
    """Base class of every warning actstore gives on purpose; the command line prints each as one
    line, ``actstore: warning: <message>``."""


class IncompleteCacheWarning(ActstoreWarning):
    """A cache was opened for analysis while some blocks are still missing."""


class ReadOnlyError(ActstoreError, PermissionError):
    """A write was attempted on a cache opened read-only, or on a read-only location."""


class FingerprintMismatchError(ActstoreError, ValueError):
    """Appending to or resuming a cache with a different model, prompts, dtype or layers."""


class CorruptCacheError(ActstoreError, OSError):
    """A chunk or metadata file of the cache is damaged, truncated or missing."""


class UnsafeCacheError(ActstoreError, ValueError):
    """A cache's metadata asks for something that opening a shared cache must never do."""


class DiskFullError(ActstoreError, OSError):
    """The destination ran out of space; the cache stays resumable."""


class PromptFileError(ActstoreError, ValueError):
    """A JSONL or CSV prompt file is malformed (the message names file, line and field)."""


class ConfigError(ActstoreError, ValueError):
    """An experiment config is invalid (the message names the key and the allowed values)."""


class ModelLoadError(ActstoreError, OSError):
    """A model or tokenizer directory is missing or cannot be loaded."""


class ExtractionError(ActstoreError, RuntimeError):
    """Extraction failed for a reason the user can act on (out of memory, NaN activations, ...)."""


class ProbeMismatchError(ActstoreError, ValueError):
    """A saved probe does not fit the cache it is applied to (d_model, model, layers)."""


class StorageError(ActstoreError, OSError):
    """A location cannot be created, reached or written (an OS error on a path; for a URL a
    missing bucket, refused credentials or an endpoint that does not answer)."""


class MissingExtraError(ActstoreError, ImportError):
    """An optional dependency (a pip extra such as ``extract``) is not installed."""


class DegenerateTargetError(ActstoreError, ValueError):
    """A probe target is constant (or not finite), so R² and every probe metric are undefined."""


class UndefinedMetricWarning(ActstoreWarning):
    """One metric (a fold's R², a detection z-score) is undefined and reported as NaN."""


class SampleLossWarning(ActstoreWarning):
    """Some prompts or tokens were left out of an analysis (the message names count and reason)."""
