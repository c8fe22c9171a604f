"""The generation phase: the model continues each prompt before any activation is captured.

Prompts are generated in batches of similar length, left-padded with an attention mask (a batch of
equal lengths needs no padding). Decoding is plain: greedy argmax, or sampling with temperature
and top-p from a ``torch.Generator`` per prompt (seeded from ``seed`` and the prompt's index), so a
prompt's continuation does not depend on the prompts batched with it. The checkpoint's
``generation_config.json`` contributes only its ``eos_token_id``; its sampling settings and
penalties are not used. A continuation ends after ``max_new_tokens``, after an end-of-sequence
token (kept), or after the token that completes a stop string (kept).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from actstore.errors import ExtractionError, InvalidArgumentError

if TYPE_CHECKING:
    from actstore.extractors._genconfig import GenerateConfig
    from actstore.prompts import PromptSet

__all__ = ["apply_chat_template", "eos_token_ids", "generate_continuations", "trim_continuation"]


def apply_chat_template(tokenizer: Any, prompts: PromptSet) -> PromptSet:
    """Each prompt as one user turn of the tokenizer's chat template, spans moved along."""
    from actstore.prompts import Prompt, PromptSet

    if not getattr(tokenizer, "chat_template", None):
        raise InvalidArgumentError(
            f"expected a tokenizer with a chat template for --chat-template, got "
            f"{type(tokenizer).__name__} without one (no chat_template in tokenizer_config.json); "
            "drop --chat-template or use an instruction-tuned checkpoint's tokenizer"
        )

    def render(content: str) -> str:
        try:
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        except Exception as exc:  # jinja2's TemplateError, or whatever the template raises
            raise InvalidArgumentError(
                f"expected the tokenizer's chat template to render one user turn, got "
                f"{type(exc).__name__}: {exc}; fix chat_template in tokenizer_config.json or "
                "drop --chat-template"
            ) from exc

    # where the user's text goes: render a marker; the text found anywhere else (say inside a
    # default system prompt that contains it) would move the spans to the wrong characters
    marker = "\x00actstore-user-content\x00"
    shell = render(marker)
    head = shell[: shell.find(marker)] if marker in shell else None
    out = []
    for i, p in enumerate(prompts.prompts):
        text = render(p.text)
        if head is not None and text.startswith(head + p.text):
            at = len(head)
        else:
            at = text.rfind(p.text)  # the user turn comes after any system prompt
        if at < 0 and p.spans:
            raise InvalidArgumentError(
                f"expected the chat template to keep prompt {i}'s text verbatim (its spans point "
                "into it), got a template that changes it; remove the spans or --chat-template"
            )
        spans = {k: (s + at, e + at) for k, (s, e) in p.spans.items()}
        out.append(Prompt(text=text, labels=dict(p.labels), spans=spans))
    return PromptSet(name=prompts.name, prompts=tuple(out))


def eos_token_ids(model_dir: str, tokenizer: Any) -> list[int]:
    """End-of-sequence ids: ``generation_config.json``'s, else the tokenizer's (may be empty)."""
    import json
    from pathlib import Path

    ids: Any = None
    path = Path(model_dir) / "generation_config.json"
    if path.is_file():
        try:
            ids = json.loads(path.read_text()).get("eos_token_id")
        except (OSError, ValueError, AttributeError):
            ids = None
    if ids is None:
        ids = tokenizer.eos_token_id
    if ids is None:
        return []
    return sorted({int(x) for x in (ids if isinstance(ids, list) else [ids])})


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(
        list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
    )


def trim_continuation(
    new: Sequence[int], eos: Sequence[int], stop: Sequence[str], tokenizer: Any
) -> list[int]:
    """Cut generated ids after the first EOS token or the token that completes a stop string."""
    out = list(new)
    eos_set = set(eos)
    for k, t in enumerate(out):
        if t in eos_set:
            out = out[: k + 1]
            break
    if stop:
        for k in range(len(out)):
            text = _decode(tokenizer, out[: k + 1])
            if any(s in text for s in stop):
                return out[: k + 1]
    return out


def _seed_for(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


class _RowSampler:
    """A logits processor that samples each row with its own generator.

    It returns scores that are ``-inf`` except at the sampled token, so greedy decoding picks it.
    """

    def __init__(self, gens: list[torch.Generator], temperature: float, top_p: float) -> None:
        self.gens = gens
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.float().cpu() / self.temperature
        if self.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            probs = torch.softmax(sorted_logits, dim=-1)
            drop = (torch.cumsum(probs, dim=-1) - probs) >= self.top_p  # keeps the top token
            sorted_logits = sorted_logits.masked_fill(drop, -torch.inf)
            logits = torch.full_like(logits, -torch.inf).scatter(-1, order, sorted_logits)
        probs = torch.softmax(logits, dim=-1)
        out = torch.full_like(scores, -torch.inf)
        for r, gen in enumerate(self.gens):
            t = int(torch.multinomial(probs[r], 1, generator=gen).item())
            out[r, t] = 0.0
        return out


class _StopStrings:
    """A stopping criterion: a row is done once its continuation's text holds a stop string."""

    def __init__(self, stop: Sequence[str], tokenizer: Any, start: int) -> None:
        self.stop = tuple(stop)
        self.tokenizer = tokenizer
        self.start = start
        self.done: list[bool] | None = None

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        rows = input_ids[:, self.start :].tolist()
        if self.done is None:
            self.done = [False] * len(rows)
        for r, row in enumerate(rows):
            if not self.done[r]:
                text = _decode(self.tokenizer, row)
                self.done[r] = any(s in text for s in self.stop)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


def _generation_batches(lens: Sequence[int], n_new: int, max_batch_tokens: int) -> list[list[int]]:
    """Longest first; a batch holds at most ``max_batch_tokens`` of prompt + new tokens."""
    order = sorted(range(len(lens)), key=lambda i: (-lens[i], i))
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (lens[cur[0]] + n_new) * (len(cur) + 1) > max_batch_tokens:
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def generate_continuations(
    model: Any,
    tokenizer: Any,
    prompt_ids: Sequence[Sequence[int]],
    cfg: GenerateConfig,
    *,
    pad_id: int,
    eos: Sequence[int],
    max_batch_tokens: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """Continue every prompt; returns the generated ids per prompt (ragged, each >= 1 token).

    Parameters
    ----------
    model
        A transformers causal LM (with a language-model head).
    prompt_ids
        Token ids of each prompt, ``(prompt, token)`` ragged.
    cfg
        The generation settings.
    pad_id, eos
        Padding id (masked out) and end-of-sequence ids.
    max_batch_tokens
        Bound on (longest prompt + max_new_tokens) x batch size.
    on_batch
        Called with the number of prompts after each batch (progress).

    Raises
    ------
    ExtractionError
        When the model cannot generate (no language-model head) or runs out of memory.
    """
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    from actstore.extractors._torchutil import is_oom

    if not hasattr(model, "generate") or model.get_output_embeddings() is None:
        raise ExtractionError(
            f"expected a causal language model with an output head to generate, got "
            f"{type(model).__name__} without one; drop --generate for this checkpoint"
        )
    n_new = cfg.max_new_tokens
    gen_cfg = GenerationConfig(
        max_new_tokens=n_new,
        min_new_tokens=0,
        do_sample=False,
        num_beams=1,
        eos_token_id=list(eos) or None,
        pad_token_id=int(pad_id),
        repetition_penalty=1.0,
        encoder_repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        renormalize_logits=False,
    )
    dev = model.get_input_embeddings().weight.device
    lens = [len(x) for x in prompt_ids]
    results: list[list[int]] = [[] for _ in prompt_ids]
    for batch in _generation_batches(lens, n_new, max_batch_tokens):
        width = max(lens[i] for i in batch)
        ids = torch.full((len(batch), width), int(pad_id), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):  # left padding: every prompt ends at the last column
            ids[r, width - lens[i] :] = torch.tensor(list(prompt_ids[i]), dtype=torch.long)
            mask[r, width - lens[i] :] = 1
        procs = LogitsProcessorList()
        if cfg.do_sample:
            gens = [torch.Generator().manual_seed(_seed_for(cfg.seed, i)) for i in batch]
            procs.append(_RowSampler(gens, cfg.temperature, cfg.top_p))
        stops = StoppingCriteriaList()
        if cfg.stop:
            stops.append(_StopStrings(cfg.stop, tokenizer, width))
        try:
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids.to(dev),
                    attention_mask=mask.to(dev),
                    generation_config=gen_cfg,
                    logits_processor=procs,
                    stopping_criteria=stops,
                )
        except Exception as exc:
            if is_oom(exc):
                raise ExtractionError(
                    f"expected generation to fit in memory, got out of memory with {len(batch)} "
                    f"prompts of up to {width} + {n_new} tokens; re-run with a smaller "
                    f"--max-batch-tokens, e.g. {max(1, max_batch_tokens // 2)}"
                ) from exc
            raise
        new = out[:, width:].cpu().tolist()
        for r, i in enumerate(batch):
            results[i] = trim_continuation(new[r], eos, cfg.stop, tokenizer)
        if on_batch is not None:
            on_batch(len(batch))
    return results
