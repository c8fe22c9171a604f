"""Generated continuations in experiment configs: ``[[prompt_sets]] generate = {...}``."""

from __future__ import annotations

import pytest
import zarr

from actstore.errors import ConfigError, FingerprintMismatchError


def _config(generate):
    from actstore.experiment import parse_config

    ps = {"name": "gen", "sources": [{"generator": "multiplication", "n": 4, "seed": 0}]}
    if generate is not None:
        ps["generate"] = generate
    return parse_config(
        {"name": "study", "prompt_sets": [ps], "extract": {"layers": [0, 1], "dtype": "float32",
                                                           "device": "cpu"}}
    )  # fmt: skip


def test_bad_generate_settings_name_the_config_key():
    with pytest.raises(ConfigError, match=r"prompt_sets\[0\]\.generate.*generate\.top_p"):
        _config({"max_new_tokens": 4, "do_sample": True, "top_p": 0})
    with pytest.raises(ConfigError, match=r"prompt_sets\[0\]\.generate.*'beam'"):
        _config({"max_new_tokens": 4, "beam": 2})


def test_run_extracts_a_generated_set_and_refuses_other_settings(tiny_qwen2_dir, tmp_path):
    from actstore.experiment._run import ExperimentRun
    from actstore.experiment._stored import check_stored_set
    from actstore.store import open_cache

    settings = {"max_new_tokens": 3, "stop": ["\n"], "find_spans": {"num": "regex:."}}
    ExperimentRun(_config(settings), out=tmp_path, model=tiny_qwen2_dir, log=lambda s: None).run(
        ["extract"]
    )
    g = zarr.open_group(str(tmp_path / "cache.zarr"), mode="r")["gen"]
    assert g["is_generated"][:].sum(axis=1).min() >= 1
    assert len(g["completion"][:]) == 4
    cache = open_cache(str(tmp_path / "cache.zarr"))
    check_stored_set(_config(settings), "gen", cache, model=None)  # the same settings: accepted
    changed = [
        ({**settings, "max_new_tokens": 4}, "generate.max_new_tokens"),
        ({**settings, "stop": []}, "generate.stop"),
        (None, "generate."),
    ]
    for gen, field in changed:
        with pytest.raises(FingerprintMismatchError, match=field.replace(".", r"\.")):
            check_stored_set(_config(gen), "gen", cache, model=None)
