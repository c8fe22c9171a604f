"""``actstore repair``: undo the damage :func:`verify_cache` finds, so resume rewrites only that.

* A damaged, truncated or missing **shard** of a recorded block, or a damaged **completion
  marker**: the block is *unrecorded* (marker deleted first, then its shard objects), so the
  extraction's resume path (``actstore extract`` with the same arguments, or
  ``actstore repair --from-extraction``) rewrites exactly those blocks and nothing else.
* A damaged ``zarr.json`` of an activation array or of the marker array: rewritten from the
  prompt set's stored spec and layout, byte for byte as it was created.
* Anything else (the root or a prompt set's group metadata, per-prompt metadata chunks) cannot
  be rebuilt from the cache alone: it is reported, and the cache should be extracted anew.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import zarr
from zarr.buffer import default_buffer_prototype

from actstore._locations import located
from actstore.errors import CorruptCacheError
from actstore.store.core._cache import Cache
from actstore.store.core._consolidated import has_consolidated, invalidate
from actstore.store.core._entry import open_cache
from actstore.store.core._positions import drop_positions, positions_prompt_set
from actstore.store.format._layout import Layout
from actstore.store.format._schema import DONE_ARRAY
from actstore.store.format._zarr import sync
from actstore.store.ops._verify import Problem, verify_cache

__all__ = ["RepairReport", "repair_cache"]


@dataclass(kw_only=True)
class RepairReport:
    """What :func:`repair_cache` changed (or, with ``dry_run``, would change)."""

    url: str
    dry_run: bool = False
    blocks: dict[str, list[int]] = field(default_factory=dict)  # prompt set -> unrecorded
    rewritten: list[str] = field(default_factory=list)  # metadata keys rebuilt from the spec
    removed: list[str] = field(default_factory=list)  # keys deleted
    consolidated: list[str] = field(default_factory=list)  # stale consolidated metadata rewritten
    consolidated_now: bool = False  # consolidated metadata written by this run
    unrepairable: list[Problem] = field(default_factory=list)
    positions: list[str] = field(default_factory=list)  # prompt sets whose positions go

    @property
    def ok(self) -> bool:
        return not self.unrepairable

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "blocks_unrecorded": self.blocks,
            "metadata_rewritten": self.rewritten,
            "removed": self.removed,
            "consolidated_rewritten": self.consolidated,
            "positions_dropped": self.positions,
            "unrepairable": [vars(p) for p in self.unrepairable],
        }


def _set_hooks(cache: Cache) -> dict[str, tuple[str, ...]]:
    return {name: tuple(cache.spec(name).hooks) for name in cache.prompt_sets}


def _classify(problem: Problem, hooks: dict[str, tuple[str, ...]]) -> tuple[str, str, Any]:
    """``("block", set, b)``, ``("meta", set, array)`` or ``("other", "", None)``."""
    parts = problem.key.split("/")
    if len(parts) < 3 or parts[0] not in hooks:
        return "other", "", None
    name, array = parts[0], parts[1]
    if array not in (*hooks[name], DONE_ARRAY):
        return "other", "", None
    if parts[2] == "zarr.json" and len(parts) == 3:
        return "meta", name, array
    if parts[2] == "c" and len(parts) >= 4 and parts[3].isdigit():
        return "block", name, int(parts[3])
    return "other", "", None


def _metadata_bytes(cache: Cache, name: str, array: str) -> bytes:
    """The ``zarr.json`` that creating *array* of prompt set *name* writes, built in memory."""
    from actstore.store.core._arrays import require_array
    from actstore.store.core._writer import bookkeeping_array_args

    info = cache.set_info(name)
    spec, layout = cache.spec(name), Layout(**info["layout"])
    mem = zarr.storage.MemoryStore()
    group = zarr.open_group(store=mem, mode="w", zarr_format=3)
    require_array(group, array, **bookkeeping_array_args(spec, layout, array))
    buf = sync(mem.get(f"{array}/zarr.json", prototype=default_buffer_prototype()))
    if buf is None:  # pragma: no cover - written on the line above, in memory
        raise RuntimeError(f"rebuilding {array}/zarr.json in memory produced nothing")
    return buf.to_bytes()


def _delete_prefix(cache: Cache, prefix: str) -> list[str]:
    async def keys() -> list[str]:
        return sorted([k async for k in cache.store.list_prefix(prefix)])

    found = sync(keys())
    for key in found:
        sync(cache.store.delete(key))
    return found


def _unrecord(cache: Cache, name: str, hooks: tuple[str, ...], block: int) -> list[str]:
    """Delete block *block*'s marker first (a crash in between leaves it merely unrecorded),
    then its shard objects."""
    marker, removed = f"{name}/{DONE_ARRAY}/c/{block}", []
    if sync(cache.store.exists(marker)):
        sync(cache.store.delete(marker))
        removed.append(marker)
    for hook in hooks:
        removed += _delete_prefix(cache, f"{name}/{hook}/c/{block}/")
    return removed


@located("write", "url")
def repair_cache(
    url: str | os.PathLike[str],
    *,
    dry_run: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> RepairReport:
    """Make the damage of a cache resumable (see the module docstring); returns what was done.

    After it, re-running the extraction (same arguments) rewrites exactly the unrecorded blocks.

    Parameters
    ----------
    url
        Cache directory or fsspec URL (a ``.zip`` is read-only and cannot be repaired).
    dry_run
        Report what would change and change nothing.
    storage_options
        fsspec options for a remote *url*.

    Returns
    -------
    RepairReport
        Per prompt set the blocks unrecorded (to be extracted again), and the metadata keys
        rewritten, removed or re-consolidated.

    Raises
    ------
    StoreNotFoundError
        Nothing at *url*.
    NotACacheError, SchemaVersionError
        Something that is not an actstore cache, or one of a newer schema.
    UnsafeCacheError
        Metadata that would make zarr run code or leave the cache (refused before reading).
    ReadOnlyError
        A cache that cannot be written (a zip, no permission) unless *dry_run*.
    CorruptCacheError
        Damage that cannot be repaired in place (unreadable prompt-set metadata): extract into a
        new cache.
    """
    cache = open_cache(url, mode="r" if dry_run else "r+", storage_options=storage_options)
    report = RepairReport(url=cache.url, dry_run=dry_run)
    try:
        hooks = _set_hooks(cache)
    except Exception as exc:
        raise CorruptCacheError(
            f"expected readable prompt-set metadata in {cache.url!r}, got {type(exc).__name__}: "
            f"{exc}; this damage cannot be repaired in place: extract into a new cache"
        ) from exc
    # metadata first: a damaged array zarr.json hides the state of its shards from verify
    checked = verify_cache(url, storage_options=storage_options, progress_label="repair: check")
    for problem in checked.problems:
        kind, name, array = _classify(problem, hooks)
        if kind == "meta":
            report.rewritten.append(problem.key)
            if not dry_run:
                invalidate(cache.store, name, cache.url)  # consolidated again at the end
                data = default_buffer_prototype().buffer.from_bytes(
                    _metadata_bytes(cache, name, array)
                )
                sync(cache.store.set(problem.key, data))
    problems = verify_cache(
        url, storage_options=storage_options, progress_label="repair: recheck"
    ).problems
    stale_positions = set()
    for problem in problems:
        kind, name, block = _classify(problem, hooks)
        if problem.kind == "consolidated":  # rewritten from the nodes below, at the end
            report.consolidated.append(problem.key)
            continue
        if positions_prompt_set(problem.key, list(hooks)):  # derived: dropped, derive again
            stale_positions.add(positions_prompt_set(problem.key, list(hooks)))
            continue
        if kind == "block":
            report.blocks.setdefault(name, [])
            if block not in report.blocks[name]:
                report.blocks[name].append(block)
        elif kind == "meta" and problem.key in report.rewritten and dry_run:
            continue
        else:
            report.unrepairable.append(problem)
    for name, blocks in report.blocks.items():
        blocks.sort()
        if not dry_run:
            for b in blocks:
                report.removed += _unrecord(cache, name, hooks[name], b)
    for name in sorted(stale_positions | set(report.blocks)):
        # derived data, out of step with what resume rewrites: dropped, derived again later
        if dry_run:
            if name in stale_positions or "positions" in cache.group(name):
                report.positions.append(name)
        else:
            dropped = drop_positions(cache, name)
            if dropped:
                report.positions.append(name)
                report.removed += dropped
    changed = report.rewritten or report.consolidated  # (unrecorded blocks change no metadata)
    if not dry_run and (changed or not has_consolidated(cache.store)):
        # metadata rewritten above, a stale consolidated copy, or none (a write was killed
        # before consolidating, or the cache predates it)
        report.consolidated_now = cache.consolidate()
    return report


def format_repair(report: RepairReport) -> str:
    """Text of a :func:`repair_cache` report (what ``actstore repair`` prints).

    Parameters
    ----------
    report
        The report :func:`repair_cache` returned.

    Returns
    -------
    str
        One line per rewritten document, unrecorded block, dropped positions group and
        unrepairable problem
        (``would ...`` for a dry run), then a summary line.
    """
    verb = "would " if report.dry_run else ""
    lines = [f"{verb}rewrite metadata {key} from the stored spec" for key in report.rewritten]
    lines += [
        f"{verb}rewrite the consolidated metadata of {key} from the stored nodes"
        for key in report.consolidated
    ]
    for name, blocks in report.blocks.items():
        lines.append(
            f"{name}: {verb}unrecord {len(blocks)} damaged block(s) {blocks}: re-run the "
            "extraction (same arguments) or `actstore repair --from-extraction` to rewrite them"
        )
    lines += [
        f"{name}: {verb}delete the materialised positions ({name}/positions/, derived data): "
        "once the set is complete, `actstore derive positions` (or the extraction re-run with "
        "--positions) writes them again"
        for name in report.positions
    ]
    lines += [
        f"cannot repair {p.kind}: {p.key} ({p.detail}); extract into a new cache"
        for p in report.unrepairable
    ]
    if not lines:
        lines.append("nothing to repair")
    lines.append(f"{report.url}: {'OK' if report.ok else 'damage left'}")
    return "\n".join(lines)
