"""Offline byte-level BPE tokenizers for the tiny test and demo models.

The pipeline copies Qwen2's own (NFC normalizer, Qwen2's split regex, byte-level without a prefix
space, byte-level decoder): transformers 5.x loads any tokenizer that sits next to a ``qwen2``
config as ``Qwen2Tokenizer`` and rebuilds exactly those parts, so any other choice would tokenize
differently through ``AutoTokenizer``. Qwen2's regex splits every digit into its own token, which
is also what the arithmetic probes want.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from actstore.errors import InvalidArgumentError

__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "QWEN2_SPLIT_REGEX",
    "TOKENIZER_CLASSES",
    "build_tokenizer",
    "default_corpus",
]

#: Qwen2's pre-tokenizer regex, verbatim from ``transformers.models.qwen2.tokenization_qwen2``.
QWEN2_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
#: End of text; also the padding and unknown token (as in Qwen2).
EOS_TOKEN = "<|endoftext|>"
#: Beginning of text; only prepended when ``add_bos=True`` (Llama-3 style).
BOS_TOKEN = "<|begin_of_text|>"
SPECIAL_TOKENS = (EOS_TOKEN, BOS_TOKEN)

#: ``tokenizer_class`` written to tokenizer_config.json per architecture. Qwen2 checkpoints name
#: their own class (which rebuilds the pipeline above, identically); GPT-2 and Llama name the
#: generic backend, which loads tokenizer.json as it is (their own classes would swap in GPT-2's
#: regex or a SentencePiece Metaspace pipeline).
TOKENIZER_CLASSES = {
    "qwen2": "Qwen2Tokenizer",
    "gpt2": "TokenizersBackend",
    "llama": "TokenizersBackend",
}
#: The other families (see ``actstore.tinymodels._families``) also name the generic backend.
_GENERIC = "TokenizersBackend"

# bos_token named when none is prepended: None for Qwen2, <|endoftext|> for GPT-2 (as real ones).
_DEFAULT_BOS = {"qwen2": None, "gpt2": EOS_TOKEN, "llama": BOS_TOKEN}

_NUMBER_WORDS = ("times", "multiplied by", "squared", "equals", "is", "plus", "minus", "half of")
_PHYSICS = (
    "A ball of mass {m} kg moves at {v} m/s. Its kinetic energy is 0.5 times {m} times {v} squared",
    "A car with mass {m} kg travels at a speed of {v} m/s. The velocity squared is {v2}.",
    "The kinetic energy of an object equals one half times mass times velocity squared.",
    "Step 1: the velocity is {v} m/s. Step 2: {v} squared equals {v2}. Step 3: energy is {ke} J.",
    "A runner of mass {m} kg covers {d} meters in {t} seconds, so the speed is {v} m/s.",
    "Question: what is the kinetic energy in joules? Answer: {ke} joules.",
)


def default_corpus(n: int = 3000, *, seed: int = 0) -> Iterator[str]:
    """Yield the built-in training text: arithmetic sentences and kinetic-energy problems.

    Parameters
    ----------
    n : int
        Number of sentences.
    seed : int
        Seed of the private random generator (the corpus is a pure function of ``n`` and ``seed``).
    """
    rng = random.Random(seed)
    for i in range(n):
        x, y = rng.randint(0, 99), rng.randint(0, 99)
        kind = i % 4
        if kind == 0:
            yield f"{x} times {y} equals {x * y}"
        elif kind == 1:
            yield f"{x} squared is {x * x}. What is {y} {rng.choice(_NUMBER_WORDS)} {x}?"
        elif kind == 2:
            yield f"Compute: {x} * {y} = {x * y}, {x} + {y} = {x + y}, {x} - {y} = {x - y}."
        else:
            m, v, t = rng.randint(1, 20), rng.randint(1, 30), rng.randint(1, 9)
            yield rng.choice(_PHYSICS).format(m=m, v=v, v2=v * v, ke=m * v * v / 2, d=v * t, t=t)


def _pipeline(tokenizer: Any) -> None:
    """Install Qwen2's normalizer, pre-tokenizer and decoder on a ``tokenizers.Tokenizer``."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers

    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()


def build_tokenizer(
    out_dir: str | Path,
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 512,
    arch: str = "qwen2",
    add_bos: bool | None = None,
    model_max_length: int = 1024,
) -> Path:
    """Train a byte-level BPE tokenizer offline and save it as Hugging Face tokenizer files.

    Writes ``tokenizer.json`` and ``tokenizer_config.json`` into ``out_dir`` (created if needed), so
    ``AutoTokenizer.from_pretrained(out_dir)`` (with the model's config.json beside it) gives the
    same ids and offsets as ``tokenizers.Tokenizer.from_file(out_dir / "tokenizer.json")``.

    Parameters
    ----------
    out_dir : str or Path
        Destination directory.
    corpus : iterable of str, optional
        Training text; the built-in arithmetic and physics corpus (:func:`default_corpus`) when
        omitted. Any text encodes either way: the 256 byte symbols are always in the vocabulary.
    vocab_size : int
        Total vocabulary size including the 256 byte symbols and the special tokens
        (``<|endoftext|>`` id 0, ``<|begin_of_text|>`` id 1); at least 258 + 1.
    arch : str
        Which checkpoint family the tokenizer config imitates (see :data:`TOKENIZER_CLASSES`;
        the other families of ``actstore.tinymodels._families`` name the generic backend and,
        unless *add_bos*, ``<|endoftext|>`` as BOS, as GPT-2).
    add_bos : bool, optional
        Prepend ``<|begin_of_text|>`` to every encoding. Default: True for ``llama`` (as Llama 3),
        False for ``qwen2`` and ``gpt2`` (as their real checkpoints).
    model_max_length : int
        Written to tokenizer_config.json.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    InvalidArgumentError
        If ``arch`` is not a known family, ``vocab_size`` leaves no room beyond the byte symbols
        and special tokens, or ``corpus`` is not an iterable of strings.

    Examples
    --------
    >>> path = build_tokenizer("/tmp/tok")  # doctest: +SKIP
    >>> tokenizers.Tokenizer.from_file(str(path / "tokenizer.json")).encode(" 7 times 8").tokens
    ['Ġ', '7', 'Ġtimes', 'Ġ', '8']
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    from actstore.tinymodels._families import FAMILIES

    if arch not in TOKENIZER_CLASSES and arch not in FAMILIES:
        raise InvalidArgumentError(
            f"expected arch in {sorted(TOKENIZER_CLASSES)}, got {arch!r}; pass one of those"
        )
    n_fixed = 256 + len(SPECIAL_TOKENS)
    if not isinstance(vocab_size, int) or vocab_size <= n_fixed:
        raise InvalidArgumentError(
            f"expected vocab_size > {n_fixed} (256 bytes + {len(SPECIAL_TOKENS)} special tokens), "
            f"got {vocab_size!r}; pass a larger vocab_size"
        )
    if add_bos is None:
        add_bos = arch == "llama"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    _pipeline(tok)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = list(default_corpus() if corpus is None else corpus)
    if not all(isinstance(t, str) for t in texts):
        raise InvalidArgumentError("expected corpus to be an iterable of str; pass strings")
    tok.train_from_iterator(texts, trainer=trainer)

    bos_id = tok.token_to_id(BOS_TOKEN)
    if add_bos:
        # Qwen2-style ByteLevel post-processing (no offset trimming) is a no-op, so only the
        # template matters; transformers rebuilds exactly this template from add_bos_token=True.
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS_TOKEN}:0 $A:0",
            pair=f"{BOS_TOKEN}:0 $A:0 {BOS_TOKEN}:1 $B:1",
            special_tokens=[(BOS_TOKEN, bos_id)],
        )
    else:
        # As in Qwen2.5's own tokenizer.json.
        tok.post_processor = processors.ByteLevel(
            add_prefix_space=False, trim_offsets=False, use_regex=False
        )
    tok.save(str(out / "tokenizer.json"))

    config = {
        "tokenizer_class": TOKENIZER_CLASSES.get(arch, _GENERIC),
        "bos_token": BOS_TOKEN if add_bos else _DEFAULT_BOS.get(arch, EOS_TOKEN),
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
        "add_bos_token": bool(add_bos),
        "add_eos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out
