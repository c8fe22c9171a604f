"""Experiment configs: the shipped ones load, and every malformed config names its key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from actstore.errors import ConfigError, InvalidArgumentError
from actstore.experiment import (
    config_hash,
    load_config,
    parse_config,
)
from actstore.extractors import resolve_layers

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "experiments").glob("*.toml"))

MINIMAL = """
name = "t"
[[prompt_sets]]
name = "arithmetic"
[[prompt_sets.sources]]
generator = "multiplication"
n = 10
[[probes]]
name = "p"
prompt_set = "arithmetic"
target = "value"
"""


def test_shipped_configs_exist() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"velocity_computation", "velocity_computation_positions"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_configs_load(path: Path) -> None:
    cfg = load_config(path)
    raw = tomllib.loads(path.read_text())
    assert cfg.name == raw["name"]
    assert [ps.name for ps in cfg.prompt_sets] == [ps["name"] for ps in raw["prompt_sets"]]
    assert [p.position for p in cfg.probes] == [p["position"] for p in raw["probes"]]
    assert cfg.to_dict()["extract"]["layers"] == raw["extract"]["layers"]


def test_reference_study_matches_seed_script() -> None:
    cfg = load_config(ROOT / "experiments" / "velocity_computation.toml")
    arith = cfg.prompt_set("arithmetic")
    assert sum(s.n for s in arith.sources) == 2000
    assert sum(s.n for s in cfg.prompt_set("physics").sources) == 50
    ex = cfg.extract
    assert resolve_layers(ex.layers, 64, other_depths=ex.other_depths) == (
        7,
        15,
        23,
        31,
        47,
        55,
        63,
    )
    assert cfg.detect is not None and cfg.detect.target == "v_squared"


def test_positions_config_has_both_positions() -> None:
    cfg = load_config(ROOT / "experiments" / "velocity_computation_positions.toml")
    assert {p.position for p in cfg.probes} == {"last", "before:answer"}


def test_minimal_config_defaults() -> None:
    cfg = parse_config(tomllib.loads(MINIMAL))
    assert cfg.extract.layers == "all"
    assert cfg.probes[0].alphas is None  # the default grid, relative to the data's scale
    assert cfg.detect is None


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ("extra_key = 1\n", "extra_key"),
        ("[extract]\nlayrs = [1]\n", "extract.layrs"),
        ('[extract]\nlayers = "every:3"\n', "extract.layers"),
        ('[extract]\nbackend = "jax"\n', "extract.backend"),
        ('[extract]\ndtype = "int8"\n', "extract.dtype"),
        ("[extract]\nmax_batch_tokens = 0\n", "extract.max_batch_tokens"),
        ('[extract]\nmax_batch_tokens = "many"\n', "extract.max_batch_tokens"),
        ('[report]\nplots = ["pie"]\n', "report.plots"),
        ('[detect]\nprompt_set = "nope"\ntarget = "v"\n', "detect.prompt_set"),
    ],
)
def test_bad_keys_are_named(patch: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"'{key}'"):
        parse_config(tomllib.loads(MINIMAL + patch if patch.startswith("[") else patch + MINIMAL))


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('target = "value"', 'target = "value"\nposition = "middle"', "probes[0].position"),
        ('target = "value"', 'target = "value"\ncv = 1', "probes[0].cv"),
        ('target = "value"', 'target = "value"\nalphas = [-1.0]', "probes[0].alphas"),
        ('prompt_set = "arithmetic"', 'prompt_set = "geometry"', "probes[0].prompt_set"),
        ('generator = "multiplication"', 'generator = "division"', "generator"),
        ("n = 10", "n = 0", "sources[0].n"),
        ('name = "p"', 'name = "probes/../x"', "probes[0].name"),
    ],
)
def test_bad_values_are_named(old: str, new: str, key: str) -> None:
    text = MINIMAL.replace(old, new, 1)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_config(tomllib.loads(text))


def test_duplicate_prompt_set_names() -> None:
    text = MINIMAL.replace(
        "[[probes]]",
        '[[prompt_sets]]\nname = "arithmetic"\n[[prompt_sets.sources]]\n'
        'generator = "squaring"\n[[probes]]',
    )
    with pytest.raises(ConfigError, match="duplicated name 'arithmetic'"):
        parse_config(tomllib.loads(text))


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError, match="'name' is missing"):
        parse_config(tomllib.loads(MINIMAL.replace('name = "t"\n', "", 1)))


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


def test_relative_file_sources_resolve_against_config_dir(tmp_path: Path) -> None:
    text = MINIMAL.replace('generator = "multiplication"\nn = 10', 'file = "data/p.jsonl"')
    (tmp_path / "c.toml").write_text(text)
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.prompt_sets[0].sources[0].file == str((tmp_path / "data" / "p.jsonl").resolve())


@pytest.mark.parametrize(
    ("layers", "other", "depth", "expected"),
    [
        ((7, 15, 23, 31, 47, 55, 63), "spaced:7", 64, (7, 15, 23, 31, 47, 55, 63)),
        ((-1, 0), None, 4, (0, 3)),
        ("all", None, 3, (0, 1, 2)),
        ("spaced:4", None, 9, (2, 4, 6, 8)),
        ("spaced:10", None, 4, (0, 1, 2, 3)),
    ],
)
def test_resolve_layers(layers, other, depth, expected) -> None:
    assert resolve_layers(layers, depth, other_depths=other) == expected


def test_resolve_layers_falls_back_and_errors() -> None:
    study = (7, 15, 23, 31, 47, 55, 63)
    small = resolve_layers(study, 8, other_depths="spaced:7")
    assert len(small) == 7 and small[-1] == 7 and list(small) == sorted(small)
    with pytest.raises(InvalidArgumentError, match=r"the model has 8 decoder layers\), got 15"):
        resolve_layers((7, 15), 8)


def test_config_hash_is_stable_and_sensitive() -> None:
    a = parse_config(tomllib.loads(MINIMAL))
    b = parse_config(tomllib.loads(MINIMAL))
    c = parse_config(tomllib.loads(MINIMAL.replace("n = 10", "n = 11")))
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
