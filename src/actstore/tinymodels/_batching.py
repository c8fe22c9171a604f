"""Training batches for the tiny models: length-sorted buckets and padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["batches_by_length", "pad_rows"]


def batches_by_length(lengths: Sequence[int], batch_size: int, gen: Any) -> list[list[int]]:
    """One epoch of batches from length-sorted buckets of 8 batches, in random order."""
    import torch

    perm = torch.randperm(len(lengths), generator=gen).tolist()
    group = 8 * batch_size
    batches = []
    for g in range(0, len(perm), group):
        chunk = sorted(perm[g : g + group], key=lambda i: lengths[i])
        batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in order]


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask
