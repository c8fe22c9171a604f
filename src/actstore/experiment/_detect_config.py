"""The ``[detect]`` table or ``[[detect]]`` blocks of an experiment config: parsing and checks.

A config detects with one ``[detect]`` table (kept as it always was: results
``detect_<probe>.json``) or with several named ``[[detect]]`` blocks, each its own prompt set,
target, span and probes (results ``detect_<block>.<probe>.json``).
"""

from __future__ import annotations

from typing import Any

from actstore.errors import ConfigError
from actstore.experiment._schema import from_mapping
from actstore.experiment._spec import DetectConfig, ExperimentConfig, check_name, check_seed

__all__ = ["parse_detect", "validate_detect"]


def _detect_key(cfg: ExperimentConfig, i: int) -> str:
    return "detect" if isinstance(cfg.detect, DetectConfig) else f"detect[{i}]"


def validate_detect(cfg: ExperimentConfig, sets: list[str], probes: list[str]) -> None:
    """Check every detection block: names, prompt set, probes."""
    if cfg.detect is not None and not isinstance(cfg.detect, DetectConfig | tuple):
        raise ConfigError(
            "config key 'detect': expected a [detect] table or [[detect]] tables, got "
            f"{type(cfg.detect).__name__}; write [detect] or [[detect]]"
        )
    blocks = cfg.detect_blocks
    if cfg.detect is not None and not blocks:
        raise ConfigError(
            "config key 'detect': expected at least one [[detect]] block, got none; "
            "add a block or remove the key"
        )
    if blocks and not cfg.probes:
        raise ConfigError("config has [detect] but no [[probes]]; add a probe or remove [detect]")
    names: set[str] = set()
    for i, det in enumerate(blocks):
        key = _detect_key(cfg, i)
        if not isinstance(det, DetectConfig):
            raise ConfigError(
                f"config key '{key}': expected a [[detect]] table, got {type(det).__name__}; "
                "write each block as a [[detect]] table"
            )
        if det.name is None and not isinstance(cfg.detect, DetectConfig):
            raise ConfigError(
                f"config key '{key}.name' is missing; expected a name for each [[detect]] block "
                '(it names the block\'s results); add name = "..."'
            )
        if det.name is not None:
            check_name(f"{key}.name", det.name)
            if det.name in names:
                raise ConfigError(
                    f"config key '{key}.name': expected a name used by one [[detect]] block, got "
                    f"{det.name!r} twice; rename one block"
                )
            names.add(det.name)
        if det.prompt_set not in sets:
            raise ConfigError(
                f"config key '{key}.prompt_set': expected one of {', '.join(sets)}, got "
                f"{det.prompt_set!r}; name a [[prompt_sets]] entry"
            )
        for name in det.probes:
            if name not in probes:
                raise ConfigError(
                    f"config key '{key}.probes': expected names among {', '.join(probes)}, got "
                    f"{name!r}; name a [[probes]] entry"
                )
        check_seed(f"{key}.seed", det.seed)
        if det.permutations < 0:
            raise ConfigError(
                f"config key '{key}.permutations': expected an integer >= 0, got "
                f"{det.permutations}; use 0 for no p-values"
            )
        if len(set(det.probes)) != len(det.probes):
            raise ConfigError(
                f"config key '{key}.probes': expected each probe once, got {list(det.probes)}; "
                "remove the repeated name"
            )


def parse_detect(raw: Any) -> DetectConfig | tuple[DetectConfig, ...]:
    """``[detect]`` (one table) or ``[[detect]]`` (a list of tables) as config objects."""
    if isinstance(raw, dict):
        return from_mapping(DetectConfig, raw, prefix="detect")
    if isinstance(raw, list):
        blocks = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise ConfigError(
                    f"config key 'detect[{i}]': expected a table, got {type(item).__name__}; "
                    "write each block as a [[detect]] table"
                )
            blocks.append(from_mapping(DetectConfig, item, prefix=f"detect[{i}]"))
        return tuple(blocks)
    raise ConfigError(
        f"config key 'detect': expected a [detect] table or [[detect]] tables, got "
        f"{type(raw).__name__}; write [detect] or [[detect]]"
    )
