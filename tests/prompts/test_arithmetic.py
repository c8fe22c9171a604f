"""The multiplication, squaring and arithmetic generators, checked against their own parsing."""

from __future__ import annotations

import re

import numpy as np
import pytest

from actstore.prompts import generate

# The reference script's phrasings, re-typed here as regexes (independent of the generator code).
MULT_RE = {
    "times": r"(\d+) times (\d+) equals (\d+)",
    "multiplied_by": r"(\d+) multiplied by (\d+) is (\d+)",
    "product_of": r"The product of (\d+) and (\d+) is (\d+)",
    "symbol": r"(\d+) × (\d+) = (\d+)",
    "multiply_colon": r"Multiply (\d+) by (\d+): (\d+)",
}
SQUARE_RE = {
    "squared_equals": r"(\d+) squared equals (\d+)",
    "square_of": r"The square of (\d+) is (\d+)",
    "superscript": r"(\d+)² = (\d+)",
    "power_of_2": r"(\d+) to the power of 2 is (\d+)",
    "question": r"What is (\d+) squared\? (\d+)",
}


def _match(patterns: dict[str, str], text: str) -> tuple[str, re.Match[str]]:
    hits = [(k, m) for k, p in patterns.items() if (m := re.fullmatch(p, text))]
    assert len(hits) == 1, f"{text!r} matches {len(hits)} phrasings"
    return hits[0]


def test_multiplication_labels_spans_and_ranges() -> None:
    ps = generate("multiplication", 300, seed=3)
    assert len(ps) == 300
    seen = set()
    for p in ps:
        key, m = _match(MULT_RE, p.text)
        x, y, z = (int(g) for g in m.groups())
        seen.add(key)
        assert z == x * y
        assert 2 <= x < 20
        assert 2 <= y < 20
        assert dict(p.labels) == {
            "x": x, "y": y, "value": z, "interaction": (x - 10.5) * (y - 10.5),
            "operation": "multiplication", "template": key,
        }  # fmt: skip
        assert dict(p.spans) == {"x": m.span(1), "y": m.span(2), "answer": m.span(3)}
        assert p.span_text("answer") == str(p.labels["value"])
    assert seen == set(MULT_RE)
    values = ps.label_array("value")
    assert values.dtype == np.float64
    assert values.min() >= 4
    assert values.max() <= 361
    # With 300 draws from 18 values, both ends of the range appear for x.
    assert set(ps.label_array("x").astype(int)) == set(range(2, 20))


def test_squaring_labels_spans_and_ranges() -> None:
    ps = generate("squaring", 300, seed=4)
    seen = set()
    for p in ps:
        key, m = _match(SQUARE_RE, p.text)
        x, z = int(m.group(1)), int(m.group(2))
        seen.add(key)
        assert z == x**2
        assert 2 <= x < 20
        assert dict(p.labels) == {
            "x": x, "value": z, "interaction": (x - 10.5) ** 2,
            "operation": "squaring", "template": key,
        }  # fmt: skip
        assert dict(p.spans) == {"x": m.span(1), "answer": m.span(2)}
    assert seen == set(SQUARE_RE)
    assert set(ps.label_array("x").astype(int)) == set(range(2, 20))


def test_arithmetic_mixes_both_operations() -> None:
    ps = generate("arithmetic", 101, seed=0)
    ops = ps.label_array("operation")
    assert (ops == "multiplication").sum() == 51
    assert (ops == "squaring").sum() == 50
    # Shuffled: the first half is not all one operation.
    assert len(set(ops[:50])) == 2
    y = ps.label_array("y")
    assert np.isnan(y[ops == "squaring"]).all()
    assert not np.isnan(y[ops == "multiplication"]).any()
    for p in ps:
        patterns = MULT_RE if p.labels["operation"] == "multiplication" else SQUARE_RE
        _key, m = _match(patterns, p.text)
        assert int(m.groups()[-1]) == p.labels["value"]


def test_custom_range_and_bad_range() -> None:
    ps = generate("multiplication", 50, seed=0, low=5, high=7)
    assert set(ps.label_array("x").astype(int)) <= {5, 6}
    with pytest.raises(ValueError, match="low < high"):
        generate("squaring", 5, low=9, high=3)
