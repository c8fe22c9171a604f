"""Length-grouped batches inside windows of consecutive blocks, bounded by a padded-token budget.

A *window* is a fixed group of ``W`` consecutive blocks, ``[w * W, (w + 1) * W)``; its prompts
are sorted by length together, so a batch may hold prompts of several blocks of its window (never
of two windows). ``W`` is chosen once, when the prompt set is created (:func:`choose_window`), and
stored in its provenance (``batch_window``); a resumed or ``--shard`` run reads it back
(:func:`stored_window`), so every block is always computed with the same batches. A set written
before windows existed has no stored ``W`` and resumes with ``W = 1`` (batches never cross blocks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from actstore.errors import CorruptCacheError, FingerprintMismatchError

__all__ = [
    "WINDOW_BATCHES",
    "WINDOW_BUDGET_BYTES",
    "Batch",
    "choose_window",
    "plan_batches",
    "plan_windows",
    "stored_window",
    "window_ranges",
]

#: a window should hold at least this many full batches (padded tokens >= this x the budget)
WINDOW_BATCHES = 4
#: host memory for block buffers: a window being assembled plus the previous one being written
WINDOW_BUDGET_BYTES = 1 << 30


@dataclass(frozen=True, kw_only=True)
class Batch:
    """One forward pass: prompts of one window (or one block), longest first.

    Attributes
    ----------
    indices : tuple of int
        Prompt indices, sorted by length, longest first.
    seq_len : int
        Padded length of the batch (its longest prompt).
    blocks : tuple of int
        The blocks (store shards) its prompts belong to, ascending.
    """

    indices: tuple[int, ...]
    seq_len: int
    blocks: tuple[int, ...]

    @property
    def padded_tokens(self) -> int:
        return len(self.indices) * self.seq_len


def plan_batches(
    n_tokens: np.ndarray,
    blocks: Sequence[tuple[int, int, int]],
    max_batch_tokens: int,
    *,
    block_size: int | None = None,
) -> list[Batch]:
    """Cut groups ``(g, start, stop)`` into batches of at most ``max_batch_tokens`` padded tokens.

    Batches never cross groups. Inside a group prompts are sorted by length (longest first, ties
    by index) and filled greedily, which keeps padding small. The plan depends only on the lengths
    and the groups. A prompt longer than the budget gets a batch of its own.

    Parameters
    ----------
    n_tokens
        ``(prompt,)`` lengths.
    blocks
        ``(g, start, stop)``: groups of consecutive prompts sorted together (a block, a window).
    max_batch_tokens
        Bound on ``len(indices) * seq_len`` of a batch.
    block_size
        Prompts per block: each batch's ``blocks`` are those of its prompts. None: ``(g,)``.

    Returns
    -------
    list of Batch
        Group by group, longest prompts first.
    """
    out: list[Batch] = []

    def batch(g: int, current: list[int], seq: int) -> Batch:
        owners = (g,) if block_size is None else tuple(sorted({i // block_size for i in current}))
        return Batch(indices=tuple(current), seq_len=seq, blocks=owners)

    for b, start, stop in blocks:
        idx = np.arange(start, stop)
        lens = n_tokens[start:stop]
        order = idx[np.lexsort((idx, -lens))]
        current: list[int] = []
        seq = 0
        for i in order.tolist():
            n = int(n_tokens[i])
            if current and max(seq, n) * (len(current) + 1) > max_batch_tokens:
                out.append(batch(b, current, seq))
                current, seq = [], 0
            current.append(i)
            seq = max(seq, n)
        if current:
            out.append(batch(b, current, seq))
    return out


def window_ranges(
    blocks: Iterable[int], *, block_size: int, n_prompts: int, window: int
) -> list[tuple[int, int, int]]:
    """``(w, start, stop)``: the prompt range of every window holding one of *blocks*, ascending."""
    out = []
    for w in sorted({int(b) // window for b in blocks}):
        out.append((w, w * window * block_size, min((w + 1) * window * block_size, n_prompts)))
    return out


def plan_windows(
    n_tokens: np.ndarray,
    blocks: Iterable[int],
    max_batch_tokens: int,
    *,
    block_size: int,
    window: int,
) -> list[Batch]:
    """The batches that compute *blocks*: their windows' plans, minus batches of other blocks only.

    Each window ``[w * window, (w + 1) * window)`` of blocks is planned whole
    (:func:`plan_batches` over its prompts), whichever of its blocks are asked for, so a block is
    always computed with the same batches: by an uninterrupted run, a resume that finds some of
    its window written (those blocks' rows are computed again and dropped) or a ``--shard``
    worker. Batches holding none of *blocks* are left out.

    Parameters
    ----------
    n_tokens
        ``(prompt,)`` lengths of the whole prompt set.
    blocks
        The blocks to compute.
    max_batch_tokens
        Bound on padded tokens per batch.
    block_size, window
        Prompts per block, blocks per window (the stored ``W``).

    Returns
    -------
    list of Batch
        Window by window, longest prompts first inside each.
    """
    wanted = {int(b) for b in blocks}
    ranges = window_ranges(wanted, block_size=block_size, n_prompts=len(n_tokens), window=window)
    batches = plan_batches(n_tokens, ranges, max_batch_tokens, block_size=block_size)
    return [b for b in batches if wanted.intersection(b.blocks)]


def choose_window(
    n_tokens: np.ndarray,
    *,
    block_size: int,
    max_batch_tokens: int,
    block_nbytes: int,
    budget: int = WINDOW_BUDGET_BYTES,
) -> int:
    """Blocks per window for a new prompt set: a few full batches, within a memory budget.

    The smallest ``W`` whose window holds ``WINDOW_BATCHES`` x ``max_batch_tokens`` tokens (the
    set's mean real tokens per block; length-sorted batches carry little padding), capped so that
    two windows of block buffers (one assembled, one being written) fit in *budget*, and never
    more than the set's blocks; at least 1. Every input is fixed for the prompt set.

    Parameters
    ----------
    n_tokens
        ``(prompt,)`` lengths of the whole prompt set.
    block_size, max_batch_tokens
        Prompts per block, padded tokens per batch.
    block_nbytes
        Host bytes of one block's buffers (every hook: ``block_size x layer x token x d_model``).
    budget
        Host bytes that ``2 x W`` block buffers may take.

    Returns
    -------
    int
    """
    n = len(n_tokens)
    n_blocks = max(1, -(-n // block_size))
    total = max(1, int(np.sum(n_tokens)))
    want = -(-WINDOW_BATCHES * max_batch_tokens * n_blocks // total)  # ceil, in integers
    cap = budget // (2 * max(1, block_nbytes))
    return int(max(1, min(want, cap, n_blocks)))


def stored_window(
    provenance: Mapping[str, Any], name: str, asked: int | None = None, n_blocks: int | None = None
) -> int:
    """The ``batch_window`` prompt set *name* records; 1 for a set written before windows existed.

    Parameters
    ----------
    provenance
        The set's provenance (``spec.provenance``).
    name
        The prompt set, for messages.
    asked
        ``--batch-window`` of this run, or None: it must equal the stored window, once capped
        at *n_blocks* as it was when the set was created.
    n_blocks
        The set's blocks (None: no cap).

    Raises
    ------
    CorruptCacheError
        A stored value that is not an integer >= 1.
    FingerprintMismatchError
        *asked* differs from the stored window.
    """
    value = provenance.get("batch_window", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CorruptCacheError(
            f"expected prompt set {name!r} to record batch_window as an integer >= 1, got "
            f"{value!r}; the cache's metadata was changed by hand: extract into a new cache"
        )
    if asked is not None and n_blocks is not None:
        asked = min(asked, n_blocks)
    if asked is not None and asked != value:
        raise FingerprintMismatchError(
            f"prompt set {name!r}: batch_window differs from the stored one: expected {value} "
            f"(stored), got {asked}; drop --batch-window to resume with the stored one, or write "
            "to a new cache or a new prompt-set name"
        )
    return value
