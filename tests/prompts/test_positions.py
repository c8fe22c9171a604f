"""Position specs and span masks, on hand-built offsets (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from actstore.errors import InvalidArgumentError, UnknownNameError
from actstore.prompts import (
    Position,
    char_spans_to_token_masks,
    parse_position,
    span_masks_for_set,
)


@pytest.mark.parametrize(
    ("spec", "kind", "span"),
    [
        ("last", "last", None),
        (" all ", "all", None),
        ("before:v_squared", "before", "v_squared"),
        ("span:answer", "span", "answer"),
        ("span: answer ", "span", "answer"),
    ],
)
def test_parse_position(spec: str, kind: str, span: str | None) -> None:
    pos = parse_position(spec)
    assert (pos.kind, pos.span) == (kind, span)
    assert parse_position(str(pos)) == pos
    assert parse_position(pos) is pos


@pytest.mark.parametrize("spec", ["", "first", "before", "before:", "span:", "last:x", "al l", 3])
def test_bad_specs_list_the_allowed_forms(spec: object) -> None:
    with pytest.raises(InvalidArgumentError, match="last, all, before:SPAN, span:SPAN"):
        parse_position(spec)  # type: ignore[arg-type]


def test_position_constructor_validates() -> None:
    with pytest.raises(InvalidArgumentError):
        Position(kind="before")
    with pytest.raises(InvalidArgumentError):
        Position(kind="last", span="x")


# text: "<bos>7 times 8 equals 56" with tokens: BOS, "7", " times", " 8", " equals", " 5", "6"
TEXT = "7 times 8 equals 56"
OFFSETS = [(0, 0), (0, 1), (1, 7), (7, 9), (9, 16), (16, 18), (18, 19)]
SPANS = {"x": (0, 1), "y": (8, 9), "answer": (17, 19)}


def test_char_spans_to_token_masks() -> None:
    masks = char_spans_to_token_masks(SPANS, OFFSETS, special=[True] + [False] * 6)
    assert masks["x"].tolist() == [False, True, False, False, False, False, False]
    # " 8" covers the span's character: leading space tokens belong to the span.
    assert np.flatnonzero(masks["y"]).tolist() == [3]
    # A number split into two tokens: both belong.
    assert np.flatnonzero(masks["answer"]).tolist() == [5, 6]
    # Without the special flag the BOS is still excluded by its empty (0, 0) offsets.
    assert char_spans_to_token_masks(SPANS, OFFSETS)["x"].tolist() == masks["x"].tolist()
    # A special token with real offsets is excluded when flagged.
    flagged = char_spans_to_token_masks({"x": (0, 1)}, [(0, 1), (0, 1)], special=[True, False])
    assert flagged["x"].tolist() == [False, True]


def test_masks_bad_input() -> None:
    with pytest.raises(InvalidArgumentError, match="shape \\(token, 2\\)"):
        char_spans_to_token_masks(SPANS, [1, 2, 3])
    with pytest.raises(InvalidArgumentError, match="special of shape"):
        char_spans_to_token_masks(SPANS, OFFSETS, special=[True])
    with pytest.raises(InvalidArgumentError, match="0 <= start < end"):
        char_spans_to_token_masks({"a": (3, 3)}, OFFSETS)
    assert char_spans_to_token_masks({"a": (0, 1)}, [])["a"].shape == (0,)


def test_select() -> None:
    masks = char_spans_to_token_masks(SPANS, OFFSETS)
    n = len(OFFSETS)
    assert parse_position("last").select(n, masks).tolist() == [6]
    assert parse_position("all").select(n, masks).tolist() == list(range(7))
    assert parse_position("span:answer").select(n, masks).tolist() == [5, 6]
    assert parse_position("before:answer").select(n, masks).tolist() == [4]
    assert parse_position("before:x").select(n, masks).tolist() == [0]  # the BOS
    # Padding beyond n_tokens is ignored; a span that is absent selects nothing.
    padded = {k: np.concatenate([v, [True, True]]) for k, v in masks.items()}
    padded["absent"] = np.zeros(9, dtype=bool)
    assert parse_position("span:answer").select(n, padded).tolist() == [5, 6]
    assert parse_position("span:absent").select(n, padded).size == 0
    assert parse_position("before:absent").select(n, padded).size == 0
    # A span starting at token 0 has no token before it.
    assert parse_position("before:a").select(3, {"a": np.array([1, 1, 0], bool)}).size == 0
    # Unknown spans name the available ones.
    with pytest.raises(UnknownNameError, match="expected a span name \\(x, y, answer\\), got 'v'"):
        parse_position("before:v").select(n, masks)
    with pytest.raises(InvalidArgumentError, match="n_tokens >= 1"):
        parse_position("last").select(0, masks)
    with pytest.raises(InvalidArgumentError, match="to cover n_tokens=9"):
        parse_position("span:x").select(9, masks)


@pytest.mark.parametrize("spec", ["last", "all", "before:a", "span:a", "before:b", "span:b"])
def test_token_mask_agrees_with_select(spec: str) -> None:
    rng = np.random.default_rng(0)
    n_prompts, n_tok = 40, 12
    n_tokens = rng.integers(1, n_tok + 1, size=n_prompts)
    masks = {}
    for name in ("a", "b"):
        starts = rng.integers(0, n_tok, size=n_prompts)
        lens = rng.integers(0, 4, size=n_prompts)  # 0: span absent in that prompt
        pos = np.arange(n_tok)
        masks[name] = (pos >= starts[:, None]) & (pos < (starts + lens)[:, None])
    position = parse_position(spec)
    got = position.token_mask(n_tokens, masks)
    assert got.shape == (n_prompts, n_tok)
    for i in range(n_prompts):
        expected = position.select(int(n_tokens[i]), {k: v[i] for k, v in masks.items()})
        assert np.flatnonzero(got[i]).tolist() == expected.tolist(), (spec, i)


def test_span_masks_for_set_stacks_and_pads() -> None:
    spans = [SPANS, {"x": (0, 1)}]
    offsets = [OFFSETS, [(0, 0), (0, 1), (1, 3)]]
    special = [[True] + [False] * 6, [True, False, False]]
    out = span_masks_for_set(spans, offsets, special)
    assert list(out) == ["x", "y", "answer"]
    assert out["answer"].shape == (2, 7)
    for i in range(2):
        single = char_spans_to_token_masks(spans[i], offsets[i], special[i])
        for name in out:
            expected = np.zeros(7, bool)
            if name in single:
                expected[: len(offsets[i])] = single[name]
            assert out[name][i].tolist() == expected.tolist()
    wide = span_masks_for_set(spans, offsets, span_names=["answer", "absent"], n_token=9)
    assert list(wide) == ["answer", "absent"]
    assert wide["answer"].shape == (2, 9)
    assert not wide["absent"].any()
    with pytest.raises(InvalidArgumentError, match="n_token >= the longest prompt"):
        span_masks_for_set(spans, offsets, n_token=3)
    with pytest.raises(InvalidArgumentError, match="one offsets"):
        span_masks_for_set(spans, offsets[:1])
