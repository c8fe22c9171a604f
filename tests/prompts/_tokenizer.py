"""A real fast tokenizer built offline for the position tests (tests only: needs tokenizers)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Qwen2's pre-tokenizer split pattern (tokenizer.json of the Qwen2/Qwen2.5 family): digits are
# split one by one and a space before a digit is its own pre-token.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BOS = "<|bos|>"


def build_fast_tokenizer(
    corpus: Iterable[str], *, kind: str = "qwen2", vocab_size: int = 400
) -> Any:
    """A byte-level BPE trained on ``corpus``, wrapped as ``PreTrainedTokenizerFast``.

    ``kind="qwen2"``: Qwen2's normalizer (NFC), split regex and byte level, untrimmed offsets.
    ``kind="gpt2"`` / ``"gpt2_trim"``: GPT-2's byte-level regex, where " 48" is one pre-token
    (a number token with its leading space), with untrimmed or trimmed offsets.
    Every encoding starts with a BOS token whose offsets are (0, 0).
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    if kind == "qwen2":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=kind == "gpt2_trim"),
            processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bos_id)]),
        ]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS)
