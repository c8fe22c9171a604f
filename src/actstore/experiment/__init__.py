"""Experiments: a TOML config describes a whole study, run stage by stage."""

from actstore.experiment._config import (
    DetectConfig,
    ExperimentConfig,
    ExtractConfig,
    ModelConfig,
    ProbeConfig,
    PromptSetConfig,
    ReportConfig,
    SourceConfig,
    config_hash,
    load_config,
    parse_config,
    resolve_layers,
)

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
