"""The offline tokenizer: AutoTokenizer agrees with the raw tokenizers object, round trips."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

pytest.importorskip("transformers")

import itertools

from tokenizers import Tokenizer

from actstore.errors import ActstoreError, InvalidArgumentError
from actstore.tinymodels import build_tokenizer
from actstore.tinymodels._tokenizer import BOS_TOKEN

TEXTS = [
    "7 times 8 equals 56",
    " 12 squared is 144.",
    "   three leading spaces, 1234567890 and\ttabs\nnew line\r\n",
    "A ball of mass 3 kg moves at 4.5 m/s; KE = 0.5*m*v^2 = 30.375 J",
    "héllo wörld, Ünïcode e\u0301 (combining), ∑ x², 😀, 数字",
    "<|endoftext|> inside text",
    "",
]


def _auto(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("arch", ["qwen2", "gpt2", "llama"])
def test_autotokenizer_matches_raw_tokenizer(
    arch: str, tiny_qwen2_dir: Path, tiny_gpt2_dir: Path, tiny_llama_dir: Path
) -> None:
    path = {"qwen2": tiny_qwen2_dir, "gpt2": tiny_gpt2_dir, "llama": tiny_llama_dir}[arch]
    raw = Tokenizer.from_file(str(path / "tokenizer.json"))
    auto = _auto(path)
    assert auto.is_fast
    if arch == "qwen2":
        # What transformers 5.x does with a qwen2 config: its own class, its own pipeline.
        assert type(auto).__name__ == "Qwen2Tokenizer"
    for text in TEXTS:
        enc = raw.encode(text)
        got = auto(text, return_offsets_mapping=True)
        assert got["input_ids"] == enc.ids, text
        assert [tuple(o) for o in got["offset_mapping"]] == [tuple(o) for o in enc.offsets], text
    # Batched with padding: each row's real tokens are the single-text encoding.
    batch = auto(TEXTS[:3], padding=True, return_offsets_mapping=True)
    for text, ids, mask in zip(TEXTS[:3], batch["input_ids"], batch["attention_mask"]):
        n = sum(mask)
        real = ids[:n] if auto.padding_side == "right" else ids[len(ids) - n :]
        assert real == raw.encode(text).ids
        assert set(ids) - set(real) <= {auto.pad_token_id}


@pytest.mark.parametrize("arch", ["qwen2", "gpt2", "llama"])
def test_round_trip_and_offsets_point_at_the_text(arch: str, tiny_model_factory) -> None:
    path = tiny_model_factory(arch)
    auto = _auto(path)
    # Special-token text inside a prompt is parsed as the special token (as in real checkpoints).
    assert auto.convert_tokens_to_ids("<|endoftext|>") in auto(TEXTS[5])["input_ids"]
    for text in TEXTS:
        if "<|" in text:
            continue
        norm = unicodedata.normalize("NFC", text)
        enc = auto(text, return_offsets_mapping=True)
        assert auto.decode(enc["input_ids"], skip_special_tokens=True) == norm
        spans = [(a, b) for a, b in enc["offset_mapping"] if b > a]
        assert all(a0 <= a1 and b0 <= b1 for (a0, b0), (a1, b1) in itertools.pairwise(spans))
        if text.isascii():
            # One byte per character: the offset slices rebuild the text exactly, in order.
            assert "".join(text[a:b] for a, b in spans) == text
    assert (auto("7 times 8")["input_ids"][0] == auto.convert_tokens_to_ids(BOS_TOKEN)) == (
        arch == "llama"
    )


def test_numbers_split_into_digits_and_leading_spaces_kept(tiny_qwen2_dir: Path) -> None:
    raw = Tokenizer.from_file(str(tiny_qwen2_dir / "tokenizer.json"))
    enc = raw.encode(" 7 times 86 equals 602")
    pieces = [" 7 times 86 equals 602"[a:b] for a, b in enc.offsets]
    # Qwen2's regex: one token per digit, the space before a number is its own token.
    assert pieces == [" ", "7", " times", " ", "8", "6", " equals", " ", "6", "0", "2"]
    assert raw.decode(enc.ids) == " 7 times 86 equals 602"


def test_any_text_encodes_without_unknown_tokens(tmp_path: Path) -> None:
    path = build_tokenizer(tmp_path, corpus=["aaa bbb aaa bbb"] * 10, vocab_size=300)
    raw = Tokenizer.from_file(str(path / "tokenizer.json"))
    text = "never seen: Ωμέγα 🚀 0123"
    assert raw.decode(raw.encode(text).ids) == text
    assert raw.get_vocab_size() <= 300
    assert "Ġbbb" in raw.get_vocab()  # learned from the given corpus


def test_deterministic_and_corpus_dependent(tmp_path: Path) -> None:
    a = build_tokenizer(tmp_path / "a")
    b = build_tokenizer(tmp_path / "b")
    c = build_tokenizer(tmp_path / "c", corpus=["kinetic energy"] * 50 + ["xyz"])
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    assert (a / "tokenizer.json").read_bytes() != (c / "tokenizer.json").read_bytes()
    config = json.loads((a / "tokenizer_config.json").read_text())
    assert config["eos_token"] == config["pad_token"] == "<|endoftext|>"


def test_bad_arguments_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="vocab_size"):
        build_tokenizer(tmp_path, vocab_size=100)
    with pytest.raises(ActstoreError, match="arch"):
        build_tokenizer(tmp_path, arch="bert")
    with pytest.raises(InvalidArgumentError, match="str"):
        build_tokenizer(tmp_path, corpus=[1, 2, 3])
