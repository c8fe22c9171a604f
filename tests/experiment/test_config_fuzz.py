"""Fuzzing the experiment-config reader: any input ends in a config or a ConfigError."""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actstore.errors import ConfigError
from actstore.experiment import ExperimentConfig, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
BASE = tomllib.loads((ROOT / "experiments" / "velocity_computation_positions.toml").read_text())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    ["name", "prompt_sets", "extract", "probes", "detect", "report", "model", "description", "x"]
)


def _check(data: object) -> None:
    try:
        cfg = parse_config(data)  # type: ignore[arg-type]
    except ConfigError:
        return
    assert isinstance(cfg, ExperimentConfig)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=6))
def test_random_tables(data: dict) -> None:
    _check(data)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [p for p in _paths(BASE) if p]


def _replace(node: object, path: tuple, value: object) -> object:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {k: (_replace(v, rest, value) if k == head else v) for k, v in node.items()}
    return [(_replace(v, rest, value) if i == head else v) for i, v in enumerate(node)]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATHS), values)
def test_one_value_mutated(path: tuple, value: object) -> None:
    """The shipped config with any one value replaced by anything."""
    _check(_replace(BASE, path, value))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_as_file(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "c.toml"
    path.write_bytes(data)
    with contextlib.suppress(ConfigError):
        load_config(path)


@pytest.mark.parametrize("n", [1_000_001, 2**61 - 1])
def test_a_huge_generated_n_is_a_config_error_not_a_memory_error(n: int) -> None:
    """Found by the fuzzer: the config check built the prompts and ran out of memory."""
    data = _replace(BASE, ("prompt_sets", 0, "sources", 0, "n"), n)
    with pytest.raises(ConfigError, match=r"sources\[0\]\.n': expected at most 1,000,000"):
        parse_config(data)
