"""Experiment configs: one TOML file describes a whole study, validated before anything runs.

:func:`load_config` builds the frozen, keyword-only dataclasses of
:mod:`actstore.experiment._spec` from TOML and checks every cross-reference (probe -> prompt set,
detection -> probes, positions, layer rules), so a typo is reported before a model is loaded. The
``[extract]`` table builds an :class:`~actstore.extractors.ExtractConfig`, the same class the
command line builds from ``actstore extract``'s options, with the same choices and defaults.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actstore.errors import ActstoreError, ConfigError
from actstore.experiment._detect_config import parse_detect, validate_detect
from actstore.experiment._label_check import check_label_names
from actstore.experiment._schema import from_mapping
from actstore.experiment._spec import (
    FORMATS,
    PLOTS,
    DetectConfig,
    ExperimentConfig,
    ExtractConfig,
    ModelConfig,
    ProbeConfig,
    PromptSetConfig,
    ReportConfig,
    SourceConfig,
    check_choice,
    check_name,
    check_seed,
    config_hash,
)
from actstore.extractors._extract_config import TOML_KEYS
from actstore.prompts._registry import MAX_GENERATED

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
    "extract_config_from_table",
    "load_config",
    "parse_config",
]

#: the keys of the ``[model]`` table (the rest of ModelConfig is read from config.json)
MODEL_KEYS = ("path",)


def _table(data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    raw = data.get(key, {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config key '{key}': expected a table, got {type(raw).__name__}")
    for name in raw:
        if name not in allowed:
            raise ConfigError(
                f"unknown config key '{key}.{name}'; expected one of: {', '.join(sorted(allowed))}"
            )
    return dict(raw)


def extract_config_from_table(table: Mapping[str, Any]) -> ExtractConfig:
    """The :class:`~actstore.extractors.ExtractConfig` an ``[extract]`` table describes.

    Each value is read by :class:`ExtractConfig` itself, so the table takes exactly what
    ``extract()`` and the command line take (one layer grammar: ``layers = 7``, ``"7,15,-1"`` or
    ``[7, 15, -1]``; ``hooks = "a,b"`` or ``["a", "b"]``), with the same messages.

    Raises
    ------
    ConfigError
        An unknown key, an ill-typed value or one outside its constraint (the message names the
        key, then the constraint as :class:`ExtractConfig` words it).
    """
    table = _table({"extract": table}, "extract", TOML_KEYS)
    if table.get("layers") == []:
        raise ConfigError("config key 'extract.layers' is empty; give layers, 'all' or 'spaced:K'")
    for key, value in table.items():  # one key at a time, so the message names it
        try:
            ExtractConfig.build(**{key: value})
        except ActstoreError as exc:
            raise ConfigError(f"config key 'extract.{key}': {exc}") from exc
    return ExtractConfig.build(**table)


def _validate(cfg: ExperimentConfig) -> None:
    from actstore.prompts import list_generators, parse_position

    check_name("name", cfg.name)
    if not cfg.prompt_sets:
        raise ConfigError(
            "config key 'prompt_sets' is empty; expected at least one [[prompt_sets]]"
        )
    seen: set[str] = set()
    generators = list_generators()
    for i, ps in enumerate(cfg.prompt_sets):
        check_name(f"prompt_sets[{i}].name", ps.name)
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
                check_choice(f"{key}.generator", src.generator, generators)
            if src.n is not None and src.n < 1:
                raise ConfigError(f"config key '{key}.n': expected a positive integer, got {src.n}")
            if src.n is not None and src.generator is not None and src.n > MAX_GENERATED:
                raise ConfigError(
                    f"config key '{key}.n': expected at most {MAX_GENERATED:,} generated prompts, "
                    f"got {src.n:,}; split the set into sources with different seeds"
                )
            check_seed(f"{key}.seed", src.seed)
    probe_names: set[str] = set()
    for i, pc in enumerate(cfg.probes):
        key = f"probes[{i}]"
        check_name(f"{key}.name", pc.name)
        if pc.name in probe_names:
            raise ConfigError(f"config key '{key}.name': duplicated name {pc.name!r}")
        probe_names.add(pc.name)
        check_choice(f"{key}.prompt_set", pc.prompt_set, sorted(seen))
        try:
            parse_position(pc.position)
        except ActstoreError as exc:
            raise ConfigError(f"config key '{key}.position': {exc}") from exc
        if pc.alphas is not None and (
            not pc.alphas or any(not math.isfinite(a) or a <= 0 for a in pc.alphas)
        ):
            raise ConfigError(
                f"config key '{key}.alphas': expected finite positive numbers, "
                f"got {list(pc.alphas)}"
            )
        if pc.cv < 2:
            raise ConfigError(f"config key '{key}.cv': expected an integer >= 2, got {pc.cv}")
        check_seed(f"{key}.seed", pc.seed)
    validate_detect(cfg, sorted(seen), sorted(probe_names))
    for p in cfg.report.plots:
        check_choice("report.plots", p, PLOTS)
    for f in cfg.report.formats:
        check_choice("report.formats", f, FORMATS)
    if not cfg.report.formats:
        raise ConfigError(
            "config key 'report.formats': expected at least one of md, html, got []; "
            'write formats = ["md"] or leave the key out for both'
        )
    if cfg.report.n_problems < 1:
        raise ConfigError(
            f"config key 'report.n_problems': expected >= 1, got {cfg.report.n_problems}"
        )
    check_label_names(cfg)  # builds generator prompt sets (no model) to learn labels and spans


def parse_config(data: Mapping[str, Any], *, base_dir: Path | None = None) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from a parsed TOML mapping.

    Relative ``file`` sources are resolved against ``base_dir`` (the config file's folder).

    Parameters
    ----------
    data
        The parsed TOML (``tomllib.loads``).
    base_dir
        Folder that relative paths are read from (default: the working directory).

    Returns
    -------
    ExperimentConfig

    Raises
    ------
    ConfigError
        Unknown keys, ill-typed values and broken cross-references; the message names the key.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"expected a TOML table at the top of the config, got {type(data).__name__}"
        )
    data = dict(data)
    raw_detect = data.pop("detect", None)
    model = from_mapping(ModelConfig, _table(data, "model", MODEL_KEYS), prefix="model")
    extract = extract_config_from_table(data.pop("extract", {}))
    data.pop("model", None)
    cfg = from_mapping(ExperimentConfig, data)
    cfg = dataclasses.replace(cfg, model=model, extract=extract)
    if raw_detect is not None:
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

    Parameters
    ----------
    path
        The ``.toml`` file; relative sources in it are read from its folder.

    Returns
    -------
    ExperimentConfig

    Raises
    ------
    ConfigError
        For a missing or unreadable file, TOML syntax errors (with the line), unknown keys,
        ill-typed values and broken cross-references; the message names the key.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(path)!r} does not exist; check the path") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text; save it as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc
    return parse_config(data, base_dir=path.parent)
