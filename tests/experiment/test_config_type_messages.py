"""An ill-typed TOML value gets one line "expected X, got Y; do Z" naming the key, the item of a
list, the type written out in words and the likeliest edit."""

from __future__ import annotations

import pytest

from actstore.errors import ConfigError
from actstore.experiment import parse_config

_PS = {"name": "arith", "sources": [{"generator": "arithmetic", "n": 20}]}
_PROBE = {"name": "last", "prompt_set": "arith", "target": "value"}


def _parse(**changes):
    return parse_config({"name": "study", "prompt_sets": [_PS], "probes": [_PROBE], **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # a scalar where a list is wanted: the list to write
        (
            {"report": {"plots": "heatmap"}},
            "config key 'report.plots': expected a list of strings, got 'heatmap' (str); write a "
            'list, e.g. ["heatmap"]',
        ),
        (
            {"probes": [{**_PROBE, "alphas": 1.0}]},
            "config key 'probes[0].alphas': expected a list of numbers, got 1.0 (float); write a "
            "list, e.g. [1.0]",
        ),
        # a bad item of a list: the item is named, not "got a list"
        (
            {"probes": [{**_PROBE, "alphas": [1.0, "10"]}]},
            "config key 'probes[0].alphas[1]': expected a number, got '10' (str); write the "
            "number without quotes",
        ),
        # a quoted number
        (
            {
                "prompt_sets": [
                    {"name": "arith", "sources": [{"generator": "arithmetic", "n": "20"}]}
                ]
            },
            "config key 'prompt_sets[0].sources[0].n': expected an integer, got '20' (str); write "
            "the number without quotes",
        ),
        (
            {"probes": [{**_PROBE, "cv": 2.5}]},
            "config key 'probes[0].cv': expected an integer, got 2.5 (float); see "
            "docs/reference/config.md for the key's type",
        ),
        (
            {"probes": [{"name": "last", "prompt_set": "arith"}]},
            "config key 'probes[0].target' is missing; expected a string; add it",
        ),
    ],
)
def test_ill_typed_values_get_one_line_naming_the_fix(changes, message):
    with pytest.raises(ConfigError) as info:
        _parse(**changes)
    assert str(info.value) == message
