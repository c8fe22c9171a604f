"""Experiments: a TOML config describes a whole study, run stage by stage.

The ``[model]`` and ``[extract]`` tables are :class:`~actstore.extractors.ModelConfig` and
:class:`~actstore.extractors.ExtractConfig` (re-exported here): one extraction config for the
command line, the experiment runner and ``repair``.
"""

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
)
from actstore.experiment._demo import run_demo
from actstore.experiment._run import ExperimentRun, StageRecord

__all__ = [
    "DetectConfig",
    "ExperimentConfig",
    "ExperimentRun",
    "ExtractConfig",
    "ModelConfig",
    "ProbeConfig",
    "PromptSetConfig",
    "ReportConfig",
    "SourceConfig",
    "StageRecord",
    "config_hash",
    "load_config",
    "parse_config",
    "run_demo",
]
