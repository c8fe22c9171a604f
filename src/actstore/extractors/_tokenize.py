"""Tokenizing a whole prompt set up front: ids, offsets, token strings, span masks, BOS handling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from actstore.errors import ExtractionError, InvalidArgumentError, ModelLoadError

if TYPE_CHECKING:
    from actstore.prompts import PromptSet

__all__ = ["BOS_MODES", "TokenizedPrompts", "load_tokenizer", "tokenize_prompts"]

BOS_MODES = ("auto", "prepend", "none")


@dataclass(frozen=True, kw_only=True)
class TokenizedPrompts:
    """A tokenized prompt set.

    Attributes
    ----------
    ids : list of list of int
        Token ids per prompt (ragged).
    n_tokens : numpy.ndarray
        ``(prompt,)`` int lengths.
    token_id : numpy.ndarray
        ``(prompt, token)`` int32, ``-1`` in padding.
    token_str : numpy.ndarray
        ``(prompt, token)`` object strings, ``""`` in padding.
    span_masks : dict of str to numpy.ndarray
        ``(prompt, token)`` bool mask per named span.
    bos : dict
        How the beginning of sequence was handled (recorded in the fingerprint).
    pad_id : int
        Token id used to fill padding positions (masked out by the attention mask).
    """

    ids: list[list[int]]
    n_tokens: np.ndarray
    token_id: np.ndarray
    token_str: np.ndarray
    span_masks: dict[str, np.ndarray]
    bos: dict[str, Any]
    pad_id: int

    @property
    def n_tokens_max(self) -> int:
        return int(self.n_tokens.max())


def load_tokenizer(path: str) -> Any:
    """Load a fast tokenizer from a local directory (offline)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # transformers raises many kinds here
        raise ModelLoadError(
            f"expected a loadable tokenizer in {path!r}, got {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}; copy the checkpoint's tokenizer "
            "files into the model directory"
        ) from exc
    if not getattr(tok, "is_fast", False):
        raise ModelLoadError(
            f"expected a fast tokenizer (tokenizer.json) in {path!r}, got {type(tok).__name__}; "
            "actstore needs character offsets to place spans: add tokenizer.json"
        )
    return tok


def tokenize_prompts(
    tokenizer: Any, prompts: PromptSet, *, bos: str = "auto", max_context: int | None = None
) -> TokenizedPrompts:
    """Tokenize every prompt, resolve spans to token masks and record BOS handling.

    ``bos="auto"`` keeps the tokenizer's default (Qwen2 adds no BOS, Llama adds one);
    ``"prepend"`` makes sure the tokenizer's BOS token starts every prompt; ``"none"`` adds no
    special tokens at all.
    """
    from actstore.prompts import char_spans_to_token_masks

    if bos not in BOS_MODES:
        raise InvalidArgumentError(f"expected bos one of {BOS_MODES}, got {bos!r}")
    texts = [p.text for p in prompts.prompts]
    if not texts:
        raise InvalidArgumentError("expected at least one prompt, got an empty prompt set")
    enc = tokenizer(
        texts,
        add_special_tokens=bos != "none",
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        # the context-length check below names the prompt in one clear error; transformers'
        # own "sequence length is longer than..." warning would be a second stderr line
        verbose=False,
    )
    ids: list[list[int]] = [list(x) for x in enc["input_ids"]]
    offsets: list[list[tuple[int, int]]] = [[tuple(o) for o in x] for x in enc["offset_mapping"]]
    special: list[list[bool]] = [[bool(s) for s in x] for x in enc["special_tokens_mask"]]
    bos_id = tokenizer.bos_token_id
    if bos == "prepend":
        if bos_id is None:
            raise InvalidArgumentError(
                f"expected a tokenizer with a BOS token for bos='prepend', got "
                f"{type(tokenizer).__name__} without one; use bos='auto' or 'none'"
            )
        for i in range(len(ids)):
            if not ids[i] or ids[i][0] != bos_id:
                ids[i].insert(0, bos_id)
                offsets[i].insert(0, (0, 0))
                special[i].insert(0, True)
    prepended = bos_id is not None and all(x and x[0] == bos_id for x in ids)
    bos_info = {
        "mode": bos,
        "bos_token": tokenizer.bos_token,
        "bos_token_id": bos_id,
        "prepended": bool(prepended),
        "add_special_tokens": bos != "none",
    }
    n_tokens = np.array([len(x) for x in ids], dtype=np.int64)
    if n_tokens.min() < 1:
        empty = int(np.argmin(n_tokens))
        raise InvalidArgumentError(
            f"expected every prompt to have at least one token, got none for prompt {empty}; "
            "remove empty prompts or use bos='prepend'"
        )
    if max_context is not None and n_tokens.max() > max_context:
        worst = int(np.argmax(n_tokens))
        raise ExtractionError(
            f"expected prompts of at most {max_context} tokens (the model's context), got "
            f"{int(n_tokens[worst])} tokens for prompt {worst} ({texts[worst][:40]!r}...); "
            "shorten or split that prompt"
        )
    t_max = int(n_tokens.max())
    token_id = np.full((len(ids), t_max), -1, dtype=np.int32)
    token_str = np.full((len(ids), t_max), "", dtype=object)
    decoded: dict[int, str] = {}
    for i, row in enumerate(ids):
        token_id[i, : len(row)] = row
        for j, t in enumerate(row):
            s = decoded.get(t)
            if s is None:
                s = decoded[t] = tokenizer.decode([t])
            token_str[i, j] = s
    span_names = list(prompts.span_names)
    span_masks = {name: np.zeros((len(ids), t_max), dtype=bool) for name in span_names}
    for i, p in enumerate(prompts.prompts):
        if not p.spans:
            continue
        masks = char_spans_to_token_masks(p.spans, offsets[i], special[i])
        for name, m in masks.items():
            span_masks[name][i, : len(m)] = m
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return TokenizedPrompts(
        ids=ids,
        n_tokens=n_tokens,
        token_id=token_id,
        token_str=token_str,
        span_masks=span_masks,
        bos=bos_info,
        pad_id=int(pad_id),
    )
