"""Standard JSON out: NaN and infinities become null, numpy values plain JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from actstore._jsonout import dumps, finite_or_null


def _strict(name: str) -> None:
    raise ValueError(name)


def test_undefined_numbers_become_null_everywhere() -> None:
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(3, 4))
    arr[0, 1], arr[2, 3], arr[1, 0] = np.nan, np.inf, -np.inf
    obj = {"a": [1.0, float("nan")], "b": arr, "c": np.float32(np.nan), "d": (np.int64(3), "x")}
    text = dumps(obj)
    back = json.loads(text, parse_constant=_strict)
    want = [[None if not math.isfinite(v) else v for v in row] for row in arr.tolist()]
    assert back == {"a": [1.0, None], "b": want, "c": None, "d": [3, "x"]}


@pytest.mark.parametrize("value", [0.5, -2, "text", None, True, [], {}])
def test_finite_values_pass_unchanged(value) -> None:
    assert finite_or_null(value) == value
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))
