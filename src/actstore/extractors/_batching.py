"""Length-grouped batches inside each block, bounded by a padded-token budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Batch", "plan_batches"]


@dataclass(frozen=True, kw_only=True)
class Batch:
    """One forward pass: prompts of one block, longest first.

    Attributes
    ----------
    block : int
        The block (store shard) the prompts belong to.
    indices : tuple of int
        Prompt indices, sorted by length, longest first.
    seq_len : int
        Padded length of the batch (its longest prompt).
    """

    block: int
    indices: tuple[int, ...]
    seq_len: int

    @property
    def padded_tokens(self) -> int:
        return len(self.indices) * self.seq_len


def plan_batches(
    n_tokens: np.ndarray, blocks: Sequence[tuple[int, int, int]], max_batch_tokens: int
) -> list[Batch]:
    """Cut blocks ``(b, start, stop)`` into batches of at most ``max_batch_tokens`` padded tokens.

    Batches never cross blocks (a block is written whole once its batches are done). Inside a block
    prompts are sorted by length (longest first, ties by index) and filled greedily, which keeps
    padding small. The plan depends only on the lengths, so a resumed or sharded run computes each
    block with exactly the same batches as an uninterrupted one. A prompt longer than the budget
    gets a batch of its own.
    """
    out: list[Batch] = []
    for b, start, stop in blocks:
        idx = np.arange(start, stop)
        lens = n_tokens[start:stop]
        order = idx[np.lexsort((idx, -lens))]
        current: list[int] = []
        seq = 0
        for i in order.tolist():
            n = int(n_tokens[i])
            if current and max(seq, n) * (len(current) + 1) > max_batch_tokens:
                out.append(Batch(block=b, indices=tuple(current), seq_len=seq))
                current, seq = [], 0
            current.append(i)
            seq = max(seq, n)
        if current:
            out.append(Batch(block=b, indices=tuple(current), seq_len=seq))
    return out
