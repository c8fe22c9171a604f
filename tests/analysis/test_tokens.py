"""Readable token labels: byte-level strings decoded, whitespace visible, decoded text untouched.

The reference for the byte-level form is the ``tokenizers`` library's own ByteLevel
pre-tokenizer (what GPT-2/Qwen-style tokenizers use), applied to known text.
"""

from __future__ import annotations

import numpy as np
import pytest

from actstore.analysis._tokens import (
    SPACE,
    byte_level_decode,
    bytes_to_unicode,
    is_byte_level,
    readable_token,
    readable_tokens,
)

tokenizers = pytest.importorskip("tokenizers")


def _byte_level_pieces(text: str) -> list[str]:
    pre = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return [piece for piece, _ in pre.pre_tokenize_str(text)]


def test_alphabet_equals_the_tokenizers_library() -> None:
    ours = bytes_to_unicode()
    assert sorted(ours) == list(range(256))
    assert set(ours.values()) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    assert ours[ord(" ")] == "Ġ" and ours[ord("\n")] == "Ċ"


@pytest.mark.parametrize(
    "text",
    [
        "A car of mass 3 kg moves at 7 m/s.\nSo v² = 49",
        "résumé naïve café – 10 × 12 = 120",
        "tabs\tand  two spaces, 数学 and emoji 🙂",
    ],
)
def test_byte_level_pieces_decode_to_the_text(text: str) -> None:
    pieces = _byte_level_pieces(text)
    assert any("Ġ" in p for p in pieces)  # the pieces really are byte-level
    assert is_byte_level(pieces)
    assert "".join(byte_level_decode(p) for p in pieces) == text
    labels = readable_tokens(np.array(pieces, dtype=object))
    visible = text.replace(" ", SPACE).replace("\n", "↵").replace("\t", "→")
    assert "".join(labels) == visible


def test_split_multibyte_character_is_shown_as_bytes() -> None:
    enc = bytes_to_unicode()
    raw = "数".encode()  # three bytes, split over two tokens
    first = "".join(enc[b] for b in raw[:2])
    second = enc[raw[2]]
    assert byte_level_decode(first) == "<0xE6><0x95>"
    assert byte_level_decode(second) == "<0xB0>"
    assert byte_level_decode(first + second) == "数"


def test_decoded_text_is_left_alone() -> None:
    decoded = np.array([["The", " speed", " is", " 7", "\n"], ["Ġ is", "é", "", "", ""]])
    # A real space (or any character outside the byte alphabet) means decoded text: 'Ġ' stays.
    assert not is_byte_level(t for t in decoded.reshape(-1) if t)
    labels = readable_tokens(decoded)
    assert labels.shape == decoded.shape
    assert list(labels[0]) == ["The", "·speed", "·is", "·7", "↵"]
    assert list(labels[1]) == ["Ġ·is", "é", "", "", ""]  # padding stays empty


def test_pure_latin1_text_without_shifted_characters_is_not_byte_level() -> None:
    assert not is_byte_level(["abc", "é", "56"])
    assert not is_byte_level([])


def test_labels_cut_control_characters_and_empty() -> None:
    assert readable_token("abcdefghijkl", width=5) == "abcd…"
    assert readable_token("\x07") == "<0x07>"
    assert readable_token("") == "∅"


def test_bad_byte_level_string_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a byte-level token string"):
        byte_level_decode("数")


def test_real_tokenizer_tokens(tiny_gpt2_dir) -> None:
    """A real byte-level tokenizer's raw tokens read like its own decode of each token."""
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_gpt2_dir))
    text = "A ball of mass 2 kg moves at 9 m/s.\nThen v squared is 81."
    ids = tok(text)["input_ids"]
    raw = tok.convert_ids_to_tokens(ids)
    assert is_byte_level(raw)
    want = [readable_token(tok.decode([i])) for i in ids]
    assert list(readable_tokens(raw)) == want
    # The decoded form (what the cache stores) gives the same labels.
    assert list(readable_tokens([tok.decode([i]) for i in ids])) == want
