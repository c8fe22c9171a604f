"""Experiment configs: one TOML file describes a whole study, validated before anything runs.

The dataclasses here are frozen and keyword-only; :func:`load_config` builds them from TOML and
checks every cross-reference (probe -> prompt set, detection -> probes, positions, layer rules), so
a typo is reported before a model is loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actstore.errors import ActstoreError, ConfigError
from actstore.experiment._schema import from_mapping, to_mapping

__all__ = [
    "DetectConfig",
    "ExperimentConfig",
    "ExtractConfig",
    "ModelConfig",
    "ProbeConfig",
    "PromptSetConfig",
    "ReportConfig",
    "SourceConfig",
    "config_hash",
    "load_config",
    "parse_config",
    "resolve_layers",
]

PLOTS = ("heatmap", "trace", "summary", "alpha")
FORMATS = ("md", "html")
BACKENDS = ("hf", "tlens")
DTYPES = ("auto", "bfloat16", "float16", "float32")
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
class ModelConfig:
    """The model directory; ``--model`` on the command line overrides it."""

    path: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExtractConfig:
    """What to capture. ``layers`` is a list, ``"all"`` or a rule ``"spaced:K"``.

    ``other_depths`` is the rule used when an explicit list does not fit the model's depth (the
    reference study's list is for 64 layers; ``"spaced:7"`` picks 7 evenly spaced layers otherwise).
    """

    layers: tuple[int, ...] | str = "all"
    other_depths: str | None = None
    hooks: tuple[str, ...] = ("resid_post",)
    backend: str = "hf"
    dtype: str = "auto"
    device: str = "auto"
    max_batch_tokens: int = 8192
    #: positions (``last``, ``before:SPAN``) also stored small for probe fitting (read-path.md)
    positions: tuple[str, ...] | str | None = field(default=None, metadata={"omit_default": True})
    #: activation compression, e.g. "zstd:1", "zstd:3", "none" (None: the store's default)
    codec: str | None = field(default=None, metadata={"omit_default": True})


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
    """A short, stable hash of config sections (dataclasses, mappings, scalars)."""
    blob = json.dumps([to_mapping(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_choice(key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(
            f"config key '{key}': expected one of {', '.join(allowed)}, got {value!r}"
        )


def _check_name(key: str, value: str) -> None:
    if not _NAME.match(value) or value in _RESERVED:
        raise ConfigError(
            f"config key '{key}': expected a name of letters, digits, '_' or '-' starting with a "
            f"letter (not 'probes'), got {value!r}"
        )


def _check_seed(key: str, value: int) -> None:
    """Seeds reach numpy generators, which refuse negative ones (and the legacy ones >= 2**32)."""
    if not 0 <= value < 2**32:
        raise ConfigError(
            f"config key '{key}': expected an integer seed in [0, 2**32), got {value}; "
            "use e.g. seed = 0"
        )


def _check_positions(positions: Any) -> None:
    from actstore.store.core import parse_position_list

    try:
        parse_position_list(positions)
    except ActstoreError as exc:
        raise ConfigError(f"config key 'extract.positions': {exc}") from exc


def _check_layer_rule(key: str, rule: str) -> None:
    if rule == "all":
        return
    m = re.fullmatch(r"spaced:(\d+)", rule)
    if not m or int(m.group(1)) < 1:
        raise ConfigError(
            f"config key '{key}': expected 'all' or 'spaced:K' (K >= 1), got {rule!r}"
        )


def _validate(cfg: ExperimentConfig) -> None:
    from actstore.prompts import list_generators, parse_position

    _check_name("name", cfg.name)
    if not cfg.prompt_sets:
        raise ConfigError(
            "config key 'prompt_sets' is empty; expected at least one [[prompt_sets]]"
        )
    seen: set[str] = set()
    generators = list_generators()
    for i, ps in enumerate(cfg.prompt_sets):
        _check_name(f"prompt_sets[{i}].name", ps.name)
        if ps.name in seen:
            raise ConfigError(f"config key 'prompt_sets[{i}].name': duplicated name {ps.name!r}")
        seen.add(ps.name)
        if not ps.sources:
            raise ConfigError(f"config key 'prompt_sets[{i}].sources' is empty; add a source")
        if ps.generate is not None:
            from actstore.errors import InvalidArgumentError
            from actstore.extractors._genconfig import parse_generate

            try:
                parse_generate(dict(ps.generate))
            except InvalidArgumentError as exc:
                raise ConfigError(f"config key 'prompt_sets[{i}].generate': {exc}") from exc
        for j, src in enumerate(ps.sources):
            key = f"prompt_sets[{i}].sources[{j}]"
            if (src.generator is None) == (src.file is None):
                raise ConfigError(f"config key '{key}': expected exactly one of generator or file")
            if src.generator is not None:
                _check_choice(f"{key}.generator", src.generator, generators)
            if src.n is not None and src.n < 1:
                raise ConfigError(f"config key '{key}.n': expected a positive integer, got {src.n}")
            _check_seed(f"{key}.seed", src.seed)
    ex = cfg.extract
    if isinstance(ex.layers, str):
        _check_layer_rule("extract.layers", ex.layers)
    elif not ex.layers:
        raise ConfigError("config key 'extract.layers' is empty; give layers, 'all' or 'spaced:K'")
    if ex.other_depths is not None:
        _check_layer_rule("extract.other_depths", ex.other_depths)
    _check_choice("extract.backend", ex.backend, BACKENDS)
    _check_choice("extract.dtype", ex.dtype, DTYPES)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", ex.device):
        raise ConfigError(
            f"config key 'extract.device': expected auto, cpu, cuda or cuda:N, got {ex.device!r}"
        )
    if ex.max_batch_tokens < 1:
        raise ConfigError(
            "config key 'extract.max_batch_tokens': expected a positive integer, "
            f"got {ex.max_batch_tokens}"
        )
    if ex.positions is not None:
        _check_positions(ex.positions)
    if ex.codec is not None:
        from actstore.errors import InvalidArgumentError
        from actstore.store.format import parse_codec

        try:
            parse_codec(ex.codec)
        except InvalidArgumentError as exc:
            raise ConfigError(f"config key 'extract.codec': {exc}") from exc
    probe_names: set[str] = set()
    for i, pc in enumerate(cfg.probes):
        key = f"probes[{i}]"
        _check_name(f"{key}.name", pc.name)
        if pc.name in probe_names:
            raise ConfigError(f"config key '{key}.name': duplicated name {pc.name!r}")
        probe_names.add(pc.name)
        _check_choice(f"{key}.prompt_set", pc.prompt_set, sorted(seen))
        try:
            parse_position(pc.position)
        except ActstoreError as exc:
            raise ConfigError(f"config key '{key}.position': {exc}") from None
        if pc.alphas is not None and (
            not pc.alphas or any(not math.isfinite(a) or a <= 0 for a in pc.alphas)
        ):
            raise ConfigError(
                f"config key '{key}.alphas': expected finite positive numbers, "
                f"got {list(pc.alphas)}"
            )
        if pc.cv < 2:
            raise ConfigError(f"config key '{key}.cv': expected an integer >= 2, got {pc.cv}")
        _check_seed(f"{key}.seed", pc.seed)
    from actstore.experiment._detect_config import validate_detect

    validate_detect(cfg, sorted(seen), sorted(probe_names))
    for p in cfg.report.plots:
        _check_choice("report.plots", p, PLOTS)
    for f in cfg.report.formats:
        _check_choice("report.formats", f, FORMATS)
    if not cfg.report.formats:
        raise ConfigError(
            "config key 'report.formats': expected at least one of md, html, got []; "
            'write formats = ["md"] or leave the key out for both'
        )
    if cfg.report.n_problems < 1:
        raise ConfigError(
            f"config key 'report.n_problems': expected >= 1, got {cfg.report.n_problems}"
        )
    from actstore.experiment._label_check import check_label_names

    check_label_names(cfg)  # builds generator prompt sets (no model) to learn labels and spans


def parse_config(data: Mapping[str, Any], *, base_dir: Path | None = None) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from a parsed TOML mapping.

    Relative ``file`` sources are resolved against ``base_dir`` (the config file's folder).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"expected a TOML table at the top of the config, got {type(data).__name__}"
        )
    data = dict(data)
    raw_detect = data.pop("detect", None)
    cfg = from_mapping(ExperimentConfig, data)
    if raw_detect is not None:
        from actstore.experiment._detect_config import parse_detect

        cfg = dataclasses.replace(cfg, detect=parse_detect(raw_detect))
    if base_dir is not None:
        sets = []
        for ps in cfg.prompt_sets:
            srcs = tuple(
                dataclasses.replace(s, file=str((base_dir / s.file).resolve()))
                if s.file is not None and not Path(s.file).is_absolute()
                else s
                for s in ps.sources
            )
            sets.append(dataclasses.replace(ps, sources=srcs))
        cfg = dataclasses.replace(cfg, prompt_sets=tuple(sets))
    _validate(cfg)
    return cfg


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment config from a TOML file.

    Raises
    ------
    ConfigError
        For a missing or unreadable file, TOML syntax errors (with the line), unknown keys,
        ill-typed values and broken cross-references; the message names the key.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist; check the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text; save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    return parse_config(data, base_dir=path.parent)


def resolve_layers(extract: ExtractConfig, n_layers: int) -> tuple[int, ...]:
    """The layer indices to capture for a model with ``n_layers`` decoder blocks.

    An explicit list that fits the depth is used as is (negative indices count from the end); a list
    that does not fit falls back to ``other_depths``; ``"spaced:K"`` picks K layers evenly spaced up
    to the last block (``round(linspace(0, n_layers - 1, K + 1)[1:])``).
    """
    import numpy as np

    def rule(r: str) -> tuple[int, ...]:
        k = n_layers if r == "all" else int(r.split(":")[1])
        if k >= n_layers:
            return tuple(range(n_layers))
        picks = np.rint(np.linspace(0, n_layers - 1, k + 1)[1:]).astype(int)
        return tuple(sorted({int(p) for p in picks}))

    if isinstance(extract.layers, str):
        return rule(extract.layers)
    layers = [layer + n_layers if layer < 0 else layer for layer in extract.layers]
    if all(0 <= layer < n_layers for layer in layers):
        return tuple(sorted(set(layers)))
    if extract.other_depths is not None:
        return rule(extract.other_depths)
    bad = [layer for layer in extract.layers if not -n_layers <= layer < n_layers]
    raise ConfigError(
        f"config key 'extract.layers': layers {bad} are out of range for a model with {n_layers} "
        f'layers (0..{n_layers - 1}); set extract.other_depths = "spaced:7" or fix the list'
    )
