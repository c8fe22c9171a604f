"""Completion markers: which blocks of a prompt set are recorded as written."""

from __future__ import annotations

from typing import Any

from actstore.store.format._schema import DONE_ARRAY
from actstore.store.format._zarr import sync

__all__ = ["missing_from_listing"]


def missing_from_listing(store: Any, prompt_set: str, n_blocks: int) -> list[int]:
    """Blocks without a completion marker, from one listing of the marker chunks.

    A marker chunk exists only once its block was written (the writer stores 1; nothing ever
    stores 0), so listing ``<set>/_blocks_done/c/`` answers for every block in one request per
    1000 blocks on object stores, instead of one read per block.
    """
    prefix = f"{prompt_set}/{DONE_ARRAY}/c/"

    async def keys() -> set[int]:
        found = set()
        async for key in store.list_prefix(prefix):
            tail = key[len(prefix) :]
            if tail.isdigit():
                found.add(int(tail))
        return found

    done = sync(keys())
    return [b for b in range(n_blocks) if b not in done]
