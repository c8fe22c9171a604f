"""Prompt validation and PromptSet columns, hash and slicing."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from actstore.errors import InvalidArgumentError, UnknownNameError
from actstore.prompts import Prompt, PromptSet


def _set() -> PromptSet:
    return PromptSet(
        name="mixed",
        prompts=(
            Prompt(text="7 times 8 equals 56", labels={"x": 7, "y": 8, "value": 56, "t": "times"},
                   spans={"x": (0, 1), "answer": (17, 19)}),
            Prompt(text="3² = 9", labels={"x": np.int64(3), "value": 9.0, "t": "sq"},
                   spans={"answer": (5, 6)}),
        ),
    )  # fmt: skip


def test_columns_and_missing_values() -> None:
    ps = _set()
    assert ps.label_names == ["x", "y", "value", "t"]
    assert ps.span_names == ["x", "answer"]
    np.testing.assert_array_equal(ps.label_array("value"), [56.0, 9.0])
    assert ps.label_array("value").dtype == np.float64
    y = ps.label_array("y")
    assert y[0] == 8
    assert np.isnan(y[1])
    t = ps.label_array("t")
    assert t.dtype == object
    assert list(t) == ["times", "sq"]
    np.testing.assert_array_equal(ps.span_array("x"), [[0, 1], [-1, -1]])
    # numpy scalars become Python numbers, so JSON and the hash see plain ints.
    assert type(ps[1].labels["x"]) is int
    with pytest.raises(UnknownNameError, match="expected a label name of set 'mixed'"):
        ps.label_array("nope")
    with pytest.raises(UnknownNameError, match="expected a span name"):
        ps.span_array("nope")


def test_mixed_column_is_str() -> None:
    ps = PromptSet(
        name="s",
        prompts=(Prompt(text="a", labels={"k": 1}), Prompt(text="b", labels={"k": "two"})),
    )
    assert list(ps.label_array("k")) == ["1", "two"]


def test_content_hash_is_sha256_of_canonical_json() -> None:
    ps = _set()
    rows = [[p.text, dict(p.labels), {k: list(v) for k, v in p.spans.items()}] for p in ps.prompts]
    expected = hashlib.sha256(
        json.dumps(rows, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert ps.content_hash() == expected
    # The name is not content; order is.
    renamed = PromptSet(name="other", prompts=ps.prompts)
    assert renamed.content_hash() == ps.content_hash()
    reordered = PromptSet(name="mixed", prompts=ps.prompts[::-1])
    assert reordered.content_hash() != ps.content_hash()
    # A change of one label value changes the hash.
    p0 = ps[0]
    changed = Prompt(text=p0.text, labels={**p0.labels, "value": 57}, spans=p0.spans)
    assert PromptSet(name="mixed", prompts=(changed, ps[1])).content_hash() != ps.content_hash()


def test_slicing_and_subset() -> None:
    ps = _set()
    assert isinstance(ps[0], Prompt)
    assert ps[1:].texts == ["3² = 9"]
    assert ps.subset([1, 0]).texts == ["3² = 9", "7 times 8 equals 56"]
    assert len(ps) == 2
    assert list(ps) == list(ps.prompts)


def test_prompt_is_immutable() -> None:
    p = _set()[0]
    with pytest.raises(TypeError):
        p.labels["x"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        p.text = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text": ""}, "'text': expected a non-empty prompt"),
        ({"text": "   "}, "'text': expected a non-empty prompt"),
        ({"text": 5}, "'text': expected a string"),
        ({"text": "abc", "spans": {"a": (2, 9)}}, r"'spans.a': expected 0 <= start < end <= 3"),
        ({"text": "abc", "spans": {"a": (2, 1)}}, r"'spans.a': expected 0 <= start < end"),
        ({"text": "abc", "spans": {"a": (1, 1)}}, r"'spans.a': expected 0 <= start < end"),
        ({"text": "abc", "spans": {"a": (0, 2), "b": (1, 3)}}, "disjoint or nested"),
        ({"text": "abc", "spans": {"a": "0:2"}}, "expected \\[start, end\\]"),
        ({"text": "abc", "labels": {"x": float("nan")}}, "'x': expected a finite number"),
        ({"text": "abc", "labels": {"x": True}}, "'x': expected a number or a string"),
        ({"text": "abc", "labels": {"x": [1]}}, "'x': expected a number or a string"),
        ({"text": "abc", "labels": {"text": 1}}, "label name other than"),
        ({"text": "abc", "labels": {"span:a": 1}}, "label name other than"),
    ],
)
def test_prompt_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        Prompt(**kwargs)


def test_nested_and_touching_spans_are_fine() -> None:
    p = Prompt(text="abcdef", spans={"outer": (0, 6), "inner": (1, 3), "next": (3, 5)})
    assert p.span_text("inner") == "bc"


def test_set_validation() -> None:
    with pytest.raises(InvalidArgumentError, match="at least one prompt"):
        PromptSet(name="x", prompts=())
    with pytest.raises(InvalidArgumentError, match="expected Prompt objects, got str"):
        PromptSet(name="x", prompts=("hello",))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="non-empty string as prompt-set name"):
        PromptSet(name="", prompts=(Prompt(text="a"),))


def test_from_records_matches_jsonl_shape() -> None:
    ps = _set()
    back = PromptSet.from_records([p.to_record() for p in ps], name="mixed")
    assert back == ps
    assert back.source == {}
    with pytest.raises(InvalidArgumentError, match="'text': expected a string"):
        PromptSet.from_records([{"value": 1}], name="x")
