"""The generator registry: decorator, listing, options, and load_prompts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from actstore.errors import InvalidArgumentError, PromptFileError, UnknownNameError
from actstore.prompts import (
    Prompt,
    _registry,
    generate,
    generator_info,
    list_generators,
    load_prompts,
    register_generator,
)


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved = dict(_registry._REGISTRY)
    yield
    _registry._REGISTRY.clear()
    _registry._REGISTRY.update(saved)


def test_builtins_are_listed() -> None:
    assert {"multiplication", "squaring", "arithmetic", "kinetic_energy"} <= set(list_generators())
    info = generator_info("kinetic_energy")
    assert info.options == {"cot": "none", "formats": None}
    assert info.default_n == 50
    assert info.description


def test_user_generator_with_decorator(clean_registry: None) -> None:
    @register_generator("addition", default_n=7)
    def addition(n: int, rng: np.random.Generator, *, high: int = 10) -> list[Prompt]:
        """x plus y equals."""
        xs, ys = rng.integers(0, high, size=(2, n)).tolist()
        return [
            Prompt(text=f"{x} plus {y} equals", labels={"x": x, "y": y, "value": x + y})
            for x, y in zip(xs, ys)
        ]

    assert "addition" in list_generators()
    ps = generate("addition", 5, seed=3, high=4)
    assert ps.name == "addition"
    assert len(ps) == 5
    assert all(p.labels["value"] == p.labels["x"] + p.labels["y"] < 8 for p in ps)
    assert ps.source == {"generator": "addition", "n": 5, "seed": 3, "options": {"high": 4}}
    assert len(load_prompts("addition")) == 7  # default_n
    assert load_prompts("addition", n=5, seed=3, high=4) == ps

    with pytest.raises(InvalidArgumentError, match="already registered; pass replace=True"):
        register_generator("addition")(lambda n, rng: [])
    register_generator("addition", replace=True)(lambda n, rng: [Prompt(text="a")] * n)
    assert generate("addition", 2).texts == ["a", "a"]


def test_generator_returning_wrong_count(clean_registry: None) -> None:
    register_generator("short")(lambda n, rng: [Prompt(text="a")])
    with pytest.raises(InvalidArgumentError, match="to return 3 prompts, got 1"):
        generate("short", 3)


def test_bad_arguments() -> None:
    with pytest.raises(UnknownNameError, match=r"expected a generator name .*kinetic_energy"):
        generate("kinetic", 3)
    with pytest.raises(InvalidArgumentError, match=r"expected options of generator .* got cots"):
        generate("kinetic_energy", 3, cots="worked")
    with pytest.raises(InvalidArgumentError, match="expected n to be an integer >= 1, got 0"):
        generate("squaring", 0)
    with pytest.raises(InvalidArgumentError, match="expected seed to be an integer >= 0"):
        generate("squaring", 2, seed=-1)
    with pytest.raises(InvalidArgumentError, match="generator name without"):
        register_generator("a:b")


def test_load_prompts_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"or a \.jsonl/\.csv file, got 'nothing'"):
        load_prompts("nothing")
    with pytest.raises(PromptFileError, match="no such file"):
        load_prompts(tmp_path / "missing.jsonl")
    path = tmp_path / "two.jsonl"
    generate("squaring", 2).to_jsonl(path)
    with pytest.raises(InvalidArgumentError, match="expected n <= 2"):
        load_prompts(path, n=3)
    with pytest.raises(InvalidArgumentError, match="no generator options for a prompt file"):
        load_prompts(path, cot="worked")
