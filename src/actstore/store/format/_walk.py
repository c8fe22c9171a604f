"""Walk a cache's arrays and the chunk keys each should have (for verify, info and copy)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import zarr

__all__ = ["array_dims", "chunk_grid", "iter_arrays", "iter_arrays_safely"]


def iter_arrays(group: zarr.Group, prefix: str = "") -> Iterator[tuple[str, zarr.Array]]:
    """``(path, array)`` for every array below *group*, depth first, sorted by name."""
    for name, node in sorted(group.members(), key=lambda kv: kv[0]):
        path = f"{prefix}{name}"
        if isinstance(node, zarr.Array):
            yield path, node
        else:
            yield from iter_arrays(node, f"{path}/")


def iter_arrays_safely(
    store: Any, prefix: str = ""
) -> Iterator[tuple[str, zarr.Array | Exception]]:
    """Like :func:`iter_arrays` from the store listing, node by node: a node whose ``zarr.json``
    does not parse is yielded as ``(path, exception)`` instead of stopping the walk."""
    from actstore.store.format._zarr import sync

    async def children() -> list[str]:
        return sorted([name async for name in store.list_dir(prefix)])

    for name in sync(children()):
        path = f"{prefix}{name}"
        if not sync(store.exists(f"{path}/zarr.json")):
            continue
        try:
            node = zarr.open(store=store, path=path, mode="r")
        except Exception as exc:  # damaged metadata: reported by the caller
            yield path, exc
            continue
        if isinstance(node, zarr.Array):
            yield path, node
        else:
            yield from iter_arrays_safely(store, f"{path}/")


def chunk_grid(arr: zarr.Array) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...], str]]:
    """``(grid coords, selection, store key)`` of every stored object (shard or chunk) of *arr*.

    The key is relative to the array's own prefix (e.g. ``c/3/0/0/0``).
    """
    outer: tuple[int, ...] = arr.shards or arr.chunks  # type: ignore[assignment]
    counts = [max(1, -(-s // c)) for s, c in zip(arr.shape, outer)]
    for coords in itertools.product(*(range(n) for n in counts)):
        sel = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(coords, outer, arr.shape))
        yield coords, sel, arr.metadata.encode_chunk_key(coords)


def array_dims(arr: zarr.Array) -> tuple[str, ...]:
    names: Any = getattr(arr.metadata, "dimension_names", None)
    return tuple(names) if names else tuple(f"dim_{i}" for i in range(arr.ndim))
