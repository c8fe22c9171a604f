"""The dataclasses of an experiment config (frozen, keyword-only) and their small checks.

:mod:`actstore.experiment._config` builds them from TOML and validates cross-references; the
``[model]`` and ``[extract]`` tables are :class:`~actstore.extractors.ModelConfig` and
:class:`~actstore.extractors.ExtractConfig`, the very classes the extractor takes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actstore.errors import ConfigError
from actstore.experiment._schema import to_mapping
from actstore.extractors._config import ModelConfig
from actstore.extractors._extract_config import ExtractConfig

__all__ = [
    "FORMATS",
    "PLOTS",
    "DetectConfig",
    "ExperimentConfig",
    "ExtractConfig",
    "ModelConfig",
    "ProbeConfig",
    "PromptSetConfig",
    "ReportConfig",
    "SourceConfig",
    "check_choice",
    "check_name",
    "check_seed",
    "config_hash",
]

PLOTS = ("heatmap", "trace", "summary", "alpha")
FORMATS = ("md", "html")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_RESERVED = {"probes"}


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    """One source of prompts: a registered generator (with ``n``, ``seed``, options) or a file."""

    generator: str | None = None
    file: str | None = None
    n: int | None = None
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PromptSetConfig:
    """A named prompt set (one cache subgroup): one or more sources, concatenated in order."""

    name: str
    sources: tuple[SourceConfig, ...]
    #: the model continues each prompt first (``{max_new_tokens = N, ...}``, see
    #: :class:`actstore.extractors.GenerateConfig` and docs/generation.md)
    generate: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    """A family of ridge probes (one per layer) fitted on one prompt set."""

    name: str
    prompt_set: str
    target: str
    position: str = "last"
    #: ``None`` (key left out): the default grid relative to each layer's scale.
    alphas: tuple[float, ...] | None = None
    cv: int = 5
    seed: int = 0
    standardize: bool = False


@dataclass(frozen=True, kw_only=True)
class DetectConfig:
    """Run the probes at every token of a prompt set and compare with ``target``.

    One ``[detect]`` table (``name`` unset: results ``detect_<probe>.json``) or several named
    ``[[detect]]`` blocks (results ``detect_<name>.<probe>.json``), e.g. one on given worked
    solutions and one on the model's own continuations. Every field other than ``name`` and
    ``probes`` is passed to :func:`actstore.analysis.detect` as a keyword argument.
    """

    prompt_set: str
    target: str
    probes: tuple[str, ...] = ()
    span: str | None = None
    seed: int = 0
    #: Shuffled-label probes and random targets per layer for the p-values (0: none).
    permutations: int = 100
    #: the block's name (required in a ``[[detect]]`` array; names its results and reports)
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    """Which figures to draw and which report formats to write."""

    plots: tuple[str, ...] = PLOTS
    formats: tuple[str, ...] = FORMATS
    n_problems: int = 5


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """A whole study: prompt sets, extraction, probes, detection and report."""

    name: str
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    prompt_sets: tuple[PromptSetConfig, ...]
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    probes: tuple[ProbeConfig, ...] = ()
    #: one ``[detect]`` table, or a tuple of named ``[[detect]]`` blocks
    detect: DetectConfig | tuple[DetectConfig, ...] | None = None
    report: ReportConfig = field(default_factory=ReportConfig)

    @property
    def detect_blocks(self) -> tuple[DetectConfig, ...]:
        """Every detection block, in config order (empty without detection)."""
        if self.detect is None:
            return ()
        if isinstance(self.detect, DetectConfig):
            return (self.detect,)
        return tuple(self.detect)

    def prompt_set(self, name: str) -> PromptSetConfig:
        """The prompt-set config called ``name``."""
        for ps in self.prompt_sets:
            if ps.name == name:
                return ps
        raise ConfigError(f"no prompt set '{name}' in the config")

    def probe(self, name: str) -> ProbeConfig:
        """The probe config called ``name``."""
        for pc in self.probes:
            if pc.name == name:
                return pc
        raise ConfigError(f"no probe '{name}' in the config")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy, as stored in the run state and report."""
        return to_mapping(self)


def config_hash(*parts: Any) -> str:
    """A short, stable hash of config sections (dataclasses, mappings, scalars).

    A stage of ``actstore run`` re-runs when the hash of the sections it depends on changes.

    Parameters
    ----------
    *parts
        Config sections; dataclasses and mappings are hashed by their keys and values (key
        order does not matter), anything else by its ``str``.

    Returns
    -------
    str
        16 hex digits of a sha256.
    """
    blob = json.dumps([to_mapping(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_choice(key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(
            f"config key '{key}': expected one of {', '.join(allowed)}, got {value!r}"
        )


def check_name(key: str, value: str) -> None:
    if not _NAME.match(value) or value in _RESERVED:
        raise ConfigError(
            f"config key '{key}': expected a name of letters, digits, '_' or '-' starting with a "
            f"letter (not 'probes'), got {value!r}"
        )


def check_seed(key: str, value: int) -> None:
    """Seeds reach numpy generators, which refuse negative ones (and the legacy ones >= 2**32)."""
    if not 0 <= value < 2**32:
        raise ConfigError(
            f"config key '{key}': expected an integer seed in [0, 2**32), got {value}; "
            "use e.g. seed = 0"
        )
