"""Span -> token resolution with a real fast tokenizer (offset mapping, BOS, multi-token numbers).

The expected tokens are checked by decoding token ids, independently of the offsets that
``char_spans_to_token_masks`` uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from actstore.prompts import (
    Prompt,
    char_spans_to_token_masks,
    generate,
    parse_position,
    span_masks_for_set,
)

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

from tests.prompts._tokenizer import build_fast_tokenizer

KINDS = ("qwen2", "gpt2", "gpt2_trim")


def _prompts() -> list[Prompt]:
    return [
        *generate("arithmetic", 40, seed=1),
        *generate("kinetic_energy", 20, seed=2, cot="worked"),
        *generate("kinetic_energy", 5, seed=3, cot="steps"),
    ]


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, Any]:
    corpus = [p.text for p in _prompts()]
    corpus += generate("kinetic_energy", 50, seed=9, cot="worked").texts
    return {kind: build_fast_tokenizer(corpus, kind=kind) for kind in KINDS}


def _encode(tok: Any, text: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    return enc["input_ids"], np.array(enc["offset_mapping"]), np.array(enc["special_tokens_mask"])


@pytest.mark.parametrize("kind", KINDS)
def test_span_tokens_decode_to_the_span(tokenizers: dict[str, Any], kind: str) -> None:
    tok = tokenizers[kind]
    multi_token = leading_space = 0
    for p in _prompts():
        ids, offsets, special = _encode(tok, p.text)
        assert ids[0] == tok.bos_token_id
        assert tuple(offsets[0]) == (0, 0)
        masks = char_spans_to_token_masks(p.spans, offsets, special.astype(bool))
        assert set(masks) == set(p.spans)
        for name, mask in masks.items():
            idx = np.flatnonzero(mask)
            assert idx.size > 0, (name, p.text)
            assert 0 not in idx  # never the BOS
            assert np.array_equal(idx, np.arange(idx[0], idx[-1] + 1)), "span tokens contiguous"
            first, last = int(idx[0]), int(idx[-1])
            inside = tok.decode(ids[first : last + 1])
            before = tok.decode(ids[1:first])
            after = tok.decode(ids[last + 1 :])
            # The tokens cover the span and nothing but (at most) whitespace in front of it.
            assert before + inside + after == p.text
            assert inside.strip() == p.span_text(name), (kind, name, inside, p.text)
            assert p.text.startswith(before)
            assert p.text[len(before) : p.spans[name][0]].strip() == ""
            if kind == "qwen2":
                # Qwen2 splits digits one by one and a space before a digit on its own.
                assert inside == p.span_text(name)
                assert idx.size == len(p.span_text(name))
            multi_token += idx.size > 1
            leading_space += inside != inside.lstrip()
    assert multi_token > 50  # multi-token numbers are exercised
    if kind.startswith("gpt2"):
        assert leading_space > 50  # number tokens carrying their leading space are exercised


@pytest.mark.parametrize("kind", KINDS)
def test_positions_on_real_tokens(tokenizers: dict[str, Any], kind: str) -> None:
    tok = tokenizers[kind]
    for p in generate("kinetic_energy", 10, seed=6, cot="worked"):
        ids, offsets, special = _encode(tok, p.text)
        masks = char_spans_to_token_masks(p.spans, offsets, special.astype(bool))
        n = len(ids)
        assert parse_position("last").select(n, masks).tolist() == [n - 1]
        for name in ("v", "v_squared", "ke"):
            span_idx = parse_position(f"span:{name}").select(n, masks)
            (before_idx,) = parse_position(f"before:{name}").select(n, masks)
            assert before_idx == span_idx[0] - 1
            # The token before the span has been read before any digit of the value is written.
            prefix = tok.decode(ids[1 : before_idx + 1])
            assert p.text.startswith(prefix)
            assert len(prefix) <= p.spans[name][0]


def test_before_first_token_is_the_bos(tokenizers: dict[str, Any]) -> None:
    p = Prompt(text="7 times 8 equals 56", spans={"x": (0, 1), "answer": (17, 19)})
    for kind in KINDS:
        tok = tokenizers[kind]
        ids, offsets, special = _encode(tok, p.text)
        masks = char_spans_to_token_masks(p.spans, offsets, special.astype(bool))
        assert parse_position("before:x").select(len(ids), masks).tolist() == [0]
        assert ids[0] == tok.bos_token_id
        # Without the special flag the BOS still stays out of every span: its offsets are (0, 0).
        assert not char_spans_to_token_masks(p.spans, offsets)["x"][0]
        assert tok.decode(np.asarray(ids)[masks["answer"]].tolist()).strip() == "56"


def test_set_masks_with_real_tokens(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["qwen2"]
    ps = generate("kinetic_energy", 10, seed=1, cot="worked")
    enc = tok(ps.texts, return_offsets_mapping=True, return_special_tokens_mask=True)
    masks = span_masks_for_set(
        [p.spans for p in ps], enc["offset_mapping"], enc["special_tokens_mask"],
        span_names=ps.span_names,
    )  # fmt: skip
    assert list(masks) == ps.span_names
    for i, p in enumerate(ps):
        for name, mask in masks.items():
            chosen = np.asarray(enc["input_ids"][i])[mask[i, : len(enc["input_ids"][i])]]
            assert tok.decode(chosen.tolist()) == (p.span_text(name) if name in p.spans else "")
