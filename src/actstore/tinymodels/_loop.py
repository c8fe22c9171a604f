"""The training loop of :func:`train_tiny_model` and its held-out evaluation (torch inside)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from actstore.tinymodels._batching import batches_by_length, pad_rows

__all__ = ["answer_eval_set", "train_loop"]

_TRAILING_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*$")


def answer_eval_set(texts: Sequence[str], tok: Any, eos: int) -> dict[str, Any]:
    """Token ids of held-out texts, and which target positions are the trailing answer."""
    rows, answer_masks = [], []
    for text in texts:
        enc = tok.encode(text)
        ids = [*enc.ids, eos]
        m = _TRAILING_NUMBER.search(text)
        start = m.start(1) if m else len(text)
        mask = [a >= start and b > a for a, b in enc.offsets] + [False]
        rows.append(ids)
        answer_masks.append(mask)
    return {"ids": rows, "answer": answer_masks}


def _token_losses(model: Any, ids: Any, mask: Any) -> Any:
    """Next-token cross-entropy at every position (batch, token - 1), zero where padded."""
    import torch

    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets = ids[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    return loss * mask[:, 1:], logits


def _evaluate(model: Any, eval_set: Mapping[str, Any], pad_id: int) -> dict[str, float]:
    import torch

    model.eval()
    tot = n = ans_tot = ans_n = 0.0
    exact = n_answers = 0
    with torch.no_grad():
        for b in range(0, len(eval_set["ids"]), 64):
            rows = eval_set["ids"][b : b + 64]
            ids, mask = pad_rows(rows, pad_id)
            loss, logits = _token_losses(model, ids, mask)
            tot += float(loss.sum())
            n += float(mask[:, 1:].sum())
            correct = logits.argmax(-1) == ids[:, 1:]
            for i, amask in enumerate(eval_set["answer"][b : b + 64]):
                # Target position t-1 predicts token t: the answer tokens are targets.
                pos = [t - 1 for t, is_ans in enumerate(amask) if is_ans and t > 0]
                if not pos:
                    continue
                ans_tot += float(loss[i, pos].sum())
                ans_n += len(pos)
                exact += bool(correct[i, pos].all())
                n_answers += 1
    model.train()
    return {
        "loss": tot / max(n, 1),
        "answer_loss": ans_tot / max(ans_n, 1),
        "answer_accuracy": exact / max(n_answers, 1),
    }


def train_loop(
    model: Any,
    train: Sequence[Sequence[int]],
    eval_set: Mapping[str, Any],
    *,
    gen: Any,
    steps: int,
    batch_size: int,
    lr: float,
    warmup: int,
    weight_decay: float,
    eval_every: int,
    pad_id: int,
) -> dict[str, Any]:
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    lengths = [len(r) for r in train]
    log: dict[str, Any] = {"step": [], "train_loss": [], "eval": []}
    log["eval"].append({"step": 0, **_evaluate(model, eval_set, pad_id)})
    model.train()
    queue: list[list[int]] = []
    window: list[float] = []
    t0 = time.perf_counter()
    for step in range(steps):
        if not queue:
            queue = batches_by_length(lengths, batch_size, gen)
        ids, mask = pad_rows([train[i] for i in queue.pop()], pad_id)
        loss_tok, _ = _token_losses(model, ids, mask)
        loss = loss_tok.sum() / mask[:, 1:].sum()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        window.append(float(loss.detach()))
        if (step + 1) % 10 == 0 or step + 1 == steps:
            log["step"].append(step + 1)
            log["train_loss"].append(sum(window) / len(window))
            window = []
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            log["eval"].append({"step": step + 1, **_evaluate(model, eval_set, pad_id)})
    log["seconds"] = time.perf_counter() - t0
    return log
