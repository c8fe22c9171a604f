"""One ExtractConfig: the CLI, the TOML [extract] table and Python build the same one; one layer
grammar everywhere; the settings reach the cache; both model backends satisfy ``Backend``."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actstore.errors import ConfigError, InvalidArgumentError
from actstore.experiment._config import extract_config_from_table
from actstore.extractors import ExtractConfig, extract, parse_layers, resolve_layers
from actstore.extractors._extract_config import TOML_KEYS
from tests.extractors._helpers import mixed_prompt_set

ROOT = Path(__file__).resolve().parents[2]
#: the inputs of one run (not settings a TOML table gives)
_INPUTS = ("model", "prompts", "out", "command", "generate")


def _extract_parser():
    from actstore.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices["extract"]


def _cli_config(*argv: str) -> ExtractConfig:
    from actstore.commands.extract import config_from_args

    base = ("--model", "m", "--prompts", "p.jsonl", "--out", "o.zarr")
    return config_from_args(_extract_parser().parse_args([*base, *argv]))


def _settings(cfg: ExtractConfig) -> dict:
    return {k: v for k, v in cfg.to_dict().items() if k not in _INPUTS}


def test_cli_options_take_choices_and_defaults_from_the_config():
    actions = {a.dest: a for a in _extract_parser()._actions}
    fields = {f.name for f in dataclasses.fields(ExtractConfig)}
    # every setting has an option (command is recorded, storage_options is a URL's business)
    assert fields - {"command", "storage_options"} <= set(actions)
    for name in fields & set(actions) - {"model", "prompts", "out", "generate"}:
        action, param = actions[name], ExtractConfig.param(name)
        assert action.default == ExtractConfig.default(name), name
        assert param.flag in action.option_strings, name
        if param.choices is not None and action.nargs != 0:  # store_true has no choices
            assert tuple(action.choices) == param.choices, name
    # the declared choices are the ones the extractor accepts, independently listed here
    assert ExtractConfig.param("backend").choices == ("hf", "tlens")
    assert ExtractConfig.param("dtype").choices == ("auto", "bfloat16", "float16", "float32")
    assert ExtractConfig.param("bos").choices == ("auto", "prepend", "none")
    # parsing no options gives the dataclass defaults
    assert _settings(_cli_config()) == _settings(ExtractConfig())


def test_toml_table_builds_the_same_config_as_the_cli():
    cli = _cli_config(
        "--layers", "7,15,-1", "--other-depths", "spaced:2", "--hook", "resid_post,resid_pre",
        "--backend", "hf", "--dtype", "float32", "--device", "cpu", "--max-batch-tokens", "512",
        "--bos", "prepend", "--block-size", "4", "--codec", "ZSTD:3",
        "--positions", "last,before:answer",
    )  # fmt: skip
    toml = extract_config_from_table(
        {
            "layers": [7, 15, -1],
            "other_depths": "spaced:2",
            "hooks": ["resid_post", "resid_pre"],
            "backend": "hf",
            "dtype": "float32",
            "device": "cpu",
            "max_batch_tokens": 512,
            "bos": "prepend",
            "block_size": 4,
            "codec": "zstd:3",
            "positions": ["last", "before:answer"],
        }
    )
    assert set(TOML_KEYS) <= set(_settings(cli))
    want = {k: v for k, v in _settings(cli).items() if k in TOML_KEYS}
    assert {k: v for k, v in _settings(toml).items() if k in TOML_KEYS} == want
    assert toml.codec == "zstd:3" and toml.layers == (7, 15, -1)
    # the comma-separated strings of the command line are one grammar with the TOML lists
    strings = {"hooks": "resid_post,resid_pre", "positions": "last,before:answer"}
    assert extract_config_from_table(strings) == ExtractConfig.build(
        hooks=("resid_post", "resid_pre"), positions=("last", "before:answer")
    )


@pytest.mark.parametrize(
    ("cli", "toml", "python", "depth"),
    [
        ("7,15,-1", [7, 15, -1], [7, 15, -1], 16),
        (" 3 , -1 ", [3, -1], 3, 4),  # 3 and -1 name the same block of a 4-layer model
        ("2", 2, [2], 4),  # an int in the TOML table too (as the grammar's table says)
        ("0,2", [0, 2], np.arange(0, 4, 2), 4),  # numpy integers from Python
        ("7,15,-1", "7,15,-1", (7, 15, -1), 16),  # a string list in the TOML table
        ("all", "all", "ALL", 5),
        ("spaced:3", "spaced:3", "spaced:3", 10),
        ("spaced:9", "spaced:9", "spaced:9", 4),
    ],
)
def test_one_layer_grammar_for_cli_toml_and_python(cli, toml, python, depth):
    got = {
        "cli": _cli_config("--layers", cli).layers,
        "toml": extract_config_from_table({"layers": toml}).layers,
        "python": ExtractConfig(layers=python).layers,
        # a cache stores resolved indices; repair re-extracts exactly those
        "repair": ExtractConfig.from_stored(_Spec(layers=resolve_layers(python, depth))).layers,
    }
    resolved = {k: resolve_layers(v, depth) for k, v in got.items()}
    assert len(set(resolved.values())) == 1, resolved
    # an independent reference: numpy for the rules, plain index arithmetic for lists
    spec = parse_layers(cli)
    if spec == "all":
        want = tuple(range(depth))
    elif isinstance(spec, str):
        k = int(spec.split(":")[1])
        picks = np.rint(np.linspace(0, depth - 1, k + 1)[1:]).astype(int) if k < depth else None
        want = tuple(range(depth)) if picks is None else tuple(sorted(set(picks.tolist())))
    else:
        want = tuple(sorted({i % depth for i in spec}))
    assert resolved["cli"] == want


@dataclasses.dataclass
class _Spec:
    """What ``from_stored`` reads of a PromptSetSpec (a stored set written without the config)."""

    layers: tuple = (0, 1)
    hooks: tuple = ("resid_post",)
    dtype: str = "float32"
    block_size: int = 4
    fingerprint: dict = dataclasses.field(default_factory=lambda: {"backend": "hf"})
    provenance: dict = dataclasses.field(default_factory=dict)


def test_other_depths_rule_replaces_a_list_that_does_not_fit():
    study = (7, 15, 23, 31, 47, 55, 63)
    assert resolve_layers(study, 64, other_depths="spaced:2") == study
    assert resolve_layers(study, 8, other_depths="spaced:2") == (4, 7)  # rint(3.5)=4, rint(7)=7
    with pytest.raises(InvalidArgumentError, match=r"\[-8, 7\] .* got 15"):
        resolve_layers(study, 8)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backend": "jax"}, "expected --backend one of hf, tlens, got 'jax'; pick one of these"),
        ({"device": "gpu"}, "expected --device auto, cpu, cuda or cuda:N, got 'gpu'"),
        ({"max_batch_tokens": 0}, "expected --max-batch-tokens >= 1, got 0; e.g. 8192"),
        ({"max_batch_tokens": True}, "expected --max-batch-tokens >= 1, got True"),
        ({"block_size": 0}, "expected --block-size >= 1 (prompts per shard), got 0; leave it"),
        ({"layers": "1;2"}, "expected layers as 'all', 'spaced:K' or comma-separated integers"),
        ({"layers": "spaced:0"}, "expected a layer rule 'all' or 'spaced:K' (K >= 1)"),
        ({"layers": [1.5]}, "expected layers as 'all', 'spaced:K', comma-separated integers or"),
        ({"hooks": ""}, "expected at least one hook, got none"),
        ({"positions": 7}, "expected positions as 'last,before:answer' or a list of names, got 7"),
        ({"positions": True}, "expected positions as 'last,before:answer' or a list of names"),
        ({"layers": True}, "expected layers as 'all', 'spaced:K', comma-separated integers or"),
        ({"max_batch_tokens": "8"}, "expected --max-batch-tokens >= 1, got '8'; e.g. 8192"),
        ({"layer": "0"}, "expected extraction settings among "),
    ],
)
def test_bad_values_are_refused_when_the_config_is_built(settings, message):
    with pytest.raises(InvalidArgumentError) as info:
        ExtractConfig.build(**settings)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    # a TOML table names the key first, with the same reason
    key = next(iter(settings))
    if key in TOML_KEYS:
        with pytest.raises(ConfigError) as toml_info:
            extract_config_from_table(settings)
        prefix = f"config key 'extract.{key}': "
        assert str(toml_info.value).startswith(prefix)
        # the table is read by ExtractConfig itself: the same message for every TOML value
        assert str(toml_info.value) == prefix + str(info.value)


def test_the_config_is_frozen_and_keyword_only():
    cfg = ExtractConfig(layers="0,-1", shard="1/4", progress=False)
    assert cfg.layers == (0, -1) and cfg.shard == (1, 4) and cfg.progress == "none"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.layers = "all"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ExtractConfig("m")  # type: ignore[misc]


def test_python_cli_and_stored_settings_agree(tiny_qwen2_dir, tmp_path):
    """``extract(**kw)``, ``extract(config)`` and the CLI plan the same; the cache records the
    settings, and ``from_stored`` (repair) reads them back."""
    prompts = tmp_path / "p.jsonl"
    ps = mixed_prompt_set(n=6)
    prompts.write_text("".join(json.dumps({"text": p.text}) + "\n" for p in ps))
    kw = dict(model=tiny_qwen2_dir, prompts=str(prompts), layers="spaced:2", dtype="float32",
              device="cpu", max_batch_tokens=64, progress="none")  # fmt: skip
    a = extract(out=tmp_path / "a.zarr", dry_run=True, **kw)
    b = extract(ExtractConfig(out=str(tmp_path / "a.zarr"), dry_run=True, **kw))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    argv = [sys.executable, "-m", "actstore", "extract", "--model", str(tiny_qwen2_dir),
            "--prompts", str(prompts), "--out", str(tmp_path / "a.zarr"), "--layers", "spaced:2",
            "--dtype", "float32", "--device", "cpu", "--max-batch-tokens", "64", "--dry-run",
            "--json"]  # fmt: skip
    c = json.loads(subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout)
    assert a.plan.to_dict() == b.plan.to_dict()
    assert c["plan"]["layers"] == list(a.plan.layers) == [2, 3]  # rint(1.5)=2, 3: 4 layers
    assert c["plan"]["batches_this_shard"] == a.plan.batches_this_shard

    rep = extract(out=tmp_path / "w.zarr", block_size=4, bos="none", **kw)
    assert rep.complete
    from actstore.store import open_cache

    spec = open_cache(tmp_path / "w.zarr").spec("p")
    stored = dict(spec.provenance)["extract_config"]
    assert stored["layers"] == "spaced:2" and stored["max_batch_tokens"] == 64
    assert "storage_options" not in stored
    # one run's own settings would differ between --shard workers writing the same set
    assert not {"out", "shard", "dry_run", "progress", "command"} & set(stored)
    again = ExtractConfig.from_stored(spec)
    assert (again.layers, again.bos, again.block_size, again.dtype) == ((2, 3), "none", 4,
                                                                        "float32")  # fmt: skip
    assert again.max_batch_tokens == 64


def test_both_backends_satisfy_the_backend_protocol(tiny_qwen2_dir):
    import torch

    from actstore.extractors import Backend
    from actstore.extractors._hf import HFBackend
    from actstore.extractors._tlens import TLensBackend

    common = dict(layers=(0, 3), torch_dtype=torch.float32, device=torch.device("cpu"), n_layers=4)
    ids, mask = torch.tensor([[1, 2, 3]]), torch.ones((1, 3), dtype=torch.long)
    for backend in (
        HFBackend(str(tiny_qwen2_dir), hooks=("resid_post",), **common),
        TLensBackend(str(tiny_qwen2_dir), hooks=("resid_post",), **common),
    ):
        try:
            assert isinstance(backend, Backend)
            got = backend.capture(ids, mask)
            assert set(got) == set(backend.hooks) == {"resid_post"}
            assert [t.shape for t in got["resid_post"]] == [(1, 3, 64)] * 2
            assert backend.widths == {"resid_post": 64}
            json.dumps(backend.provenance)
        finally:
            backend.close()
    assert not isinstance(object(), Backend)


def test_one_model_config_for_the_toml_and_the_checkpoint(tiny_qwen2_dir):
    from actstore.experiment import parse_config
    from actstore.extractors import ModelConfig, read_model_config

    base = {
        "name": "s",
        "prompt_sets": [{"name": "a", "sources": [{"generator": "multiplication"}]}],
    }
    cfg = parse_config({**base, "model": {"path": str(tiny_qwen2_dir)}})
    read = read_model_config(cfg.model.path)
    assert type(cfg.model) is type(read) is ModelConfig
    raw = json.loads((tiny_qwen2_dir / "config.json").read_text())
    assert (read.n_layers, read.d_model) == (raw["num_hidden_layers"], raw["hidden_size"])
    assert read.path == str(tiny_qwen2_dir) and cfg.model.n_layers is None
    assert cfg.to_dict()["model"] == {"path": str(tiny_qwen2_dir)}  # hashes as before
    with pytest.raises(
        ConfigError, match=r"^unknown config key 'model.n_layers'; expected one of: path$"
    ):
        parse_config({**base, "model": {"path": "m", "n_layers": 4}})


@pytest.mark.parametrize("hooks", ["resid_post,resid_post", ["resid_post", " resid_post"]])
def test_a_hook_named_twice_is_captured_once(hooks, tiny_qwen2_dir, tmp_path):
    """As a repeated layer is: the config, the TOML table and the dry-run plan count it once (the
    plan counted its bytes twice while the run stored it once)."""
    assert ExtractConfig(hooks=hooks).hooks == ("resid_post",)
    if isinstance(hooks, list):
        assert extract_config_from_table({"hooks": hooks}).hooks == ("resid_post",)
    ps = mixed_prompt_set(n=4)
    plan = extract(model=tiny_qwen2_dir, prompts=ps, out=tmp_path / "a.zarr", layers="all",
                   hooks=hooks, dtype="float32", device="cpu", dry_run=True).plan  # fmt: skip
    assert plan.hooks == ("resid_post",)
    # independent reference: float32 values of every padded token, every layer, d_model wide
    config = json.loads((Path(tiny_qwen2_dir) / "config.json").read_text())
    want = len(ps) * plan.n_tokens_max * config["num_hidden_layers"] * config["hidden_size"] * 4
    assert plan.bytes_uncompressed == want
