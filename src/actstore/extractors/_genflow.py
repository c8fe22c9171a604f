"""Generated continuations in the extraction flow: metadata, spans in the continuation, resume.

The continuation's token ids are part of the prompt set's metadata (``token_id``, ``n_tokens``,
``is_generated``, the label ``completion``), which the store writes whole when it creates the set,
before any activation block. A resumed, re-run or sharded worker finds the set and reads the ids
back from the cache, so it captures exactly the stored continuation and never generates again.
The ``token`` dim is sized prompt + ``max_new_tokens`` (known before generating), so every worker
plans the same spec whether or not its continuations stopped early.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from actstore.errors import FingerprintMismatchError, InvalidArgumentError

if TYPE_CHECKING:
    from actstore.extractors._genconfig import GenerateConfig
    from actstore.prompts import PromptSet
    from actstore.store import Cache, PromptSetMetadata

__all__ = [
    "GeneratedTokens",
    "build_generated",
    "check_finders",
    "check_generate_fields",
    "continuation_offsets",
    "find_in_continuation",
    "stored_tokens",
]


@dataclass(frozen=True, kw_only=True)
class GeneratedTokens:
    """Prompt + continuation ids as the capture pass needs them.

    Attributes
    ----------
    ids : list of list of int
        ``(prompt, token)`` ragged: prompt ids then generated ids.
    n_tokens : numpy.ndarray
        ``(prompt,)`` lengths of prompt + continuation.
    n_tokens_max : int
        The stored ``token`` size (longest prompt + max_new_tokens).
    pad_id : int
    """

    ids: list[list[int]]
    n_tokens: np.ndarray
    n_tokens_max: int
    pad_id: int


def continuation_offsets(tokenizer: Any, ids: Sequence[int]) -> list[tuple[int, int]]:
    """Character ``[start, end)`` of each generated token in the decoded continuation.

    A character whose UTF-8 bytes are split over several tokens (byte-level BPE writes ``²`` or
    ``€`` as two or three byte tokens) belongs to every one of them, as in the tokenizers' own
    offset mappings, so a span over that character has no hole.
    """
    kw = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
    full = tokenizer.decode(list(ids), **kw)
    out: list[tuple[int, int]] = []
    prev, prev_text = 0, ""
    for k in range(len(ids)):
        text = tokenizer.decode(list(ids[: k + 1]), **kw)
        # a token completing a character replaces the prefix's trailing U+FFFD: start there
        same = next((j for j, (a, b) in enumerate(zip(prev_text, text)) if a != b), None)
        start = min(prev, min(len(prev_text), len(text)) if same is None else same)
        pending = len(prev_text) - 1
        if prev_text.endswith("\ufffd") and pending < len(full) and full[pending] != "\ufffd":
            start = min(start, pending)  # this token adds bytes to a still unfinished character
        end = max(len(text), prev, start)  # a partial character may decode longer than its end
        out.append((start, end))
        prev, prev_text = end, text
    return out


def _number_pattern(value: Any) -> str:
    if isinstance(value, str):
        return re.escape(value)
    v = float(value)
    text = str(int(v)) if v.is_integer() else repr(v)
    # not part of a longer number: no digit or decimal point before, no digit after
    return rf"(?<![\d.]){re.escape(text)}(?:\.0+)?(?!\.?\d)"


def find_in_continuation(finder: str, completion: str, labels: Mapping[str, Any]) -> tuple | None:
    """Character ``(start, end)`` of the first non-empty match of *finder* in *completion*.

    None when it does not appear, also for a ``label:`` finder on a prompt that lacks the label
    (or holds NaN there). Whether the label column exists at all is checked before generating
    (:func:`check_finders`).
    """
    kind, _, arg = finder.partition(":")
    if kind == "label":
        value = labels.get(arg)
        if value is None or (not isinstance(value, str) and not math.isfinite(float(value))):
            return None
        pattern = _number_pattern(value)
    else:
        pattern = arg
    for m in re.finditer(pattern, completion):
        if m.end() > m.start():  # an empty match marks no character: look further
            return (m.start(), m.end())
    return None


def check_finders(tok: Any, prompts: PromptSet, cfg: GenerateConfig) -> None:
    """Refuse, before anything is loaded or generated, finders that cannot be stored."""
    clash = set(cfg.find_spans) & (set(tok.span_masks) | set(prompts.span_names))
    if clash:
        raise InvalidArgumentError(
            f"expected span finder names other than the prompt set's spans, got {sorted(clash)}; "
            "rename the finder"
        )
    if "completion" in prompts.label_names:
        raise InvalidArgumentError(
            "expected no label named 'completion' in a generated run (the continuation's text "
            "is stored under that name), got one; rename the label"
        )
    for name, finder in cfg.find_spans.items():
        kind, _, arg = finder.partition(":")
        if kind == "label" and arg not in prompts.label_names:
            raise InvalidArgumentError(
                f"expected a label column {arg!r} for the span finder {name}={finder}, got "
                f"labels {sorted(prompts.label_names)}; name an existing label column"
            )


def build_generated(
    tokenizer: Any,
    tok: Any,
    prompts: PromptSet,
    gens: Sequence[Sequence[int]],
    cfg: GenerateConfig,
    t_max: int,
) -> tuple[GeneratedTokens, PromptSetMetadata]:
    """Metadata of prompt + continuation: token ids/strings, spans, ``is_generated``, completion."""
    from actstore.prompts import char_spans_to_token_masks
    from actstore.store import PromptSetMetadata

    p = len(gens)
    check_finders(tok, prompts, cfg)
    ids = [list(a) + list(g) for a, g in zip(tok.ids, gens)]
    n_tokens = np.array([len(x) for x in ids], dtype=np.int64)
    token_id = np.full((p, t_max), -1, dtype=np.int32)
    token_str = np.full((p, t_max), "", dtype=object)
    is_generated = np.zeros((p, t_max), dtype=bool)
    decoded: dict[int, str] = {}
    for i, row in enumerate(ids):
        token_id[i, : len(row)] = row
        for j, t in enumerate(row):
            s = decoded.get(t)
            if s is None:
                s = decoded[t] = tokenizer.decode([t])
            token_str[i, j] = s
        is_generated[i, len(tok.ids[i]) : len(row)] = True
    spans = {}
    for name, m in tok.span_masks.items():
        spans[name] = np.zeros((p, t_max), dtype=bool)
        spans[name][:, : m.shape[1]] = m
    completions = []
    missing: dict[str, int] = {}
    for name in cfg.find_spans:
        spans[name] = np.zeros((p, t_max), dtype=bool)
    for i, g in enumerate(gens):
        offsets = continuation_offsets(tokenizer, g)
        text = offsets and tokenizer.decode(
            list(g), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        completions.append(text or "")
        labels = prompts.prompts[i].labels
        for name, finder in cfg.find_spans.items():
            where = find_in_continuation(finder, text or "", labels)
            if where is None:
                missing[name] = missing.get(name, 0) + 1
                continue
            mask = char_spans_to_token_masks({name: where}, offsets)[name]
            start = len(tok.ids[i])
            spans[name][i, start : start + len(mask)] = mask
    for name, n in missing.items():
        warnings.warn(
            f"span {name!r} ({cfg.find_spans[name]}) was not found in {n} of {p} continuations; "
            f"those prompts have an empty span {name!r}",
            UserWarning,
            stacklevel=3,
        )
    labels = {name: prompts.label_array(name) for name in prompts.label_names}
    labels["completion"] = np.array(completions, dtype=object)
    meta = PromptSetMetadata(
        text=[x.text for x in prompts.prompts],
        n_tokens=n_tokens,
        token_id=token_id,
        token_str=token_str,
        labels=labels,
        span_masks=spans,
        is_generated=is_generated,
    )
    return GeneratedTokens(ids=ids, n_tokens=n_tokens, n_tokens_max=t_max, pad_id=tok.pad_id), meta


def stored_tokens(cache: Cache, set_name: str, pad_id: int) -> GeneratedTokens:
    """The prompt + continuation ids stored in *set_name* (what every worker captures)."""
    group = cache.group(set_name)
    token_id = np.asarray(group["token_id"][:])
    n_tokens = np.asarray(group["n_tokens"][:]).astype(np.int64)
    ids = [token_id[i, : int(n)].tolist() for i, n in enumerate(n_tokens)]
    return GeneratedTokens(
        ids=ids, n_tokens=n_tokens, n_tokens_max=int(token_id.shape[1]), pad_id=int(pad_id)
    )


def check_generate_fields(cache: Cache, set_name: str, fingerprint: Mapping[str, Any]) -> None:
    """Refuse, naming the field, when the stored generation settings differ from these."""
    stored = cache.spec(set_name).fingerprint
    keys = [k for k in fingerprint if k.startswith("generate.")]
    keys += [k for k in sorted(stored) if k.startswith("generate.") and k not in fingerprint]
    if keys and not any(k in fingerprint for k in keys):  # a plain run over a generated set
        n = stored.get("generate.max_new_tokens")
        raise FingerprintMismatchError(
            f"prompt set {set_name!r}: generate.max_new_tokens differs from the stored one: "
            f"expected {n!r} (stored: a generated set), got no generation; re-run with the stored "
            "generation settings (--generate and the rest), or write to a new cache or a new "
            "--set-name"
        )
    for key in keys:
        old, new = stored.get(key), fingerprint.get(key)
        if old != new:
            what = "no generation" if old is None else repr(old)
            raise FingerprintMismatchError(
                f"prompt set {set_name!r}: {key} differs from the stored one: expected {what} "
                f"(stored), got {new!r}; re-run with the stored setting, or write to a new cache "
                "or a new --set-name"
            )


def generation_phase(
    *,
    model_dir: str,
    torch_dtype: Any,
    dev: Any,
    tokenizer: Any,
    tok: Any,
    prompts: PromptSet,
    cfg: GenerateConfig,
    t_max: int,
    eos: Sequence[int],
    max_batch_tokens: int,
    keep_model: bool,
    verbose: bool = True,
) -> tuple[GeneratedTokens, PromptSetMetadata, Any]:
    """Load the model, continue every prompt, build the metadata; the model when *keep_model*."""
    import sys
    import time

    from actstore.extractors._generate import generate_continuations
    from actstore.extractors._hf import _load_model

    model = _load_model(model_dir, torch_dtype, dev)
    t0 = time.perf_counter()
    done = [0]

    def on_batch(n: int) -> None:
        done[0] += n
        if not verbose:
            return
        print(
            f"generated {done[0]}/{len(tok.ids)} continuations ({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
        )

    gens = generate_continuations(
        model,
        tokenizer,
        tok.ids,
        cfg,
        pad_id=tok.pad_id,
        eos=eos,
        max_batch_tokens=max_batch_tokens,
        on_batch=on_batch,
    )
    gtok, meta = build_generated(tokenizer, tok, prompts, gens, cfg, t_max)
    if not keep_model:
        del model
        model = None
    return gtok, meta, model


def generate_fingerprint(cfg: GenerateConfig, tokenizer: Any, eos: Sequence[int]) -> dict[str, Any]:
    """Fingerprint entries of a generated run: the settings, the EOS ids and the chat template."""
    import hashlib

    out = cfg.fingerprint()
    out["generate.eos_token_id"] = list(eos)
    if cfg.chat_template:
        template = str(getattr(tokenizer, "chat_template", "") or "")
        out["generate.chat_template_sha256"] = hashlib.sha256(template.encode()).hexdigest()
    return out


def plan_lengths(tok: Any, cfg: GenerateConfig, max_context: int | None) -> tuple[np.ndarray, int]:
    """Planned ``(prompt,)`` lengths and ``token`` size: each prompt + ``max_new_tokens``."""
    from actstore.errors import ExtractionError

    n_tokens = tok.n_tokens + cfg.max_new_tokens
    t_max = int(n_tokens.max())
    if max_context is not None and t_max > max_context:
        worst = int(np.argmax(n_tokens))
        raise ExtractionError(
            f"expected prompt + max_new_tokens within the model's context of {max_context} "
            f"tokens, got {int(tok.n_tokens[worst])} + {cfg.max_new_tokens} for prompt {worst}; "
            "generate fewer tokens or shorten the prompt"
        )
    return n_tokens, t_max
