"""Remove the ``.partial`` files a killed write leaves behind in a local cache.

zarr's ``LocalStore`` writes every object to ``<key>.<uuid>.partial`` and renames it into place,
so a reader never sees half an object. A process killed mid-write leaves that temporary file:
never read, but a stale copy of up to a whole shard. Whoever next writes the same objects removes
the leftovers first, at moments where no live writer can own them:

* the prompt set's metadata, while the set is being (re)created: under the creation lock, and
  before the set is marked ready nothing else writes there;
* a block's shard and completion marker, just before that block is written: blocks are written
  by exactly one worker (``--shard I/N`` splits them disjointly).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from actstore.store.format._storage import is_local, is_zip

__all__ = [
    "PARTIAL_SUFFIX",
    "clear_block",
    "is_partial",
    "remove_block_partials",
    "remove_partials",
]

PARTIAL_SUFFIX = ".partial"


def is_partial(name: str) -> bool:
    """True for zarr's temporary ``<key>.<uuid hex>.partial`` files."""
    return name.endswith(PARTIAL_SUFFIX)


def _root(url: str) -> Path | None:
    return Path(url) if is_local(url) and not is_zip(url) else None


def remove_partials(url: str, prefix: str = "", *, recursive: bool = True) -> int:
    """Delete ``*.partial`` files below *prefix* of a local cache; returns how many."""
    root = _root(url)
    if root is None:
        return 0
    base = root / prefix if prefix else root
    if not base.is_dir():
        return 0
    found: Iterable[Path] = base.rglob(f"*{PARTIAL_SUFFIX}") if recursive else base.iterdir()
    n = 0
    for path in found:
        if is_partial(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            n += 1
    return n


def remove_block_partials(url: str, prompt_set: str, arrays: Iterable[str], block: int) -> int:
    """Delete leftovers of block *block*'s shards (of *arrays*) and of its completion marker."""
    from actstore.store.format._schema import DONE_ARRAY

    root = _root(url)
    if root is None:
        return 0
    n = 0
    for name in arrays:
        n += remove_partials(url, f"{prompt_set}/{name}/c/{block}")
    # the marker chunk "c/<b>" is written via "c/<b>.<uuid>.partial"
    for path in (root / prompt_set / DONE_ARRAY / "c").glob(f"{block}.*{PARTIAL_SUFFIX}"):
        path.unlink(missing_ok=True)
        n += 1
    return n


def clear_block(store: Any, prompt_set: str, arrays: Iterable[str], block: int) -> None:
    """Delete whatever shard objects of an unrecorded block exist (leftovers of a killed write)."""
    from actstore.store.format._zarr import sync

    async def run() -> None:
        for name in arrays:
            prefix = f"{prompt_set}/{name}/c/{block}/"
            async for key in store.list_prefix(prefix):
                await store.delete(key)

    sync(run())
