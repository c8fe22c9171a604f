"""``actstore verify``: read every chunk, check its crc32c, and list corrupt or missing ones."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actstore._jsonout import dumps
from actstore._locations import located
from actstore._progress import Progress
from actstore.store.core._entry import open_cache
from actstore.store.core._guard import min_shard_bytes
from actstore.store.format._markers import missing_from_listing
from actstore.store.format._schema import DONE_ARRAY
from actstore.store.format._walk import chunk_grid, iter_arrays_safely
from actstore.store.format._zarr import sync

__all__ = ["Problem", "VerifyReport", "format_report", "verify_cache"]


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One damaged or missing object: ``kind`` is ``"corrupt"``, ``"missing"``, ``"metadata"`` or
    ``"consolidated"`` (a group's consolidated metadata differs from the stored nodes)."""

    kind: str
    key: str
    detail: str


@dataclass(kw_only=True)
class VerifyReport:
    """What :func:`verify_cache` checked and found."""

    url: str
    n_arrays: int = 0
    n_objects: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "arrays_checked": self.n_arrays,
            "chunks_checked": self.n_objects,
            "problems": [vars(p) for p in self.problems],
        }


@located("read", "url")
def verify_cache(
    url: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    progress_label: str = "verify",
) -> VerifyReport:
    """Read and checksum every shard/chunk of the cache at *url*.

    A chunk whose crc32c does not match (or that does not decode) is reported ``corrupt``; a chunk
    that should exist (every chunk of a metadata array, every shard of a block recorded complete)
    but does not is reported ``missing``. Shards of blocks not recorded complete may be absent.
    Progress (inside :func:`actstore.show_progress`) counts chunks, named *progress_label*.

    Parameters
    ----------
    url
        Cache directory, ``.zip`` file or fsspec URL (``s3://...``, ``memory://...``).
    storage_options
        fsspec options for a remote *url* (credentials, endpoint).
    progress_label
        The progress bar's name.

    Returns
    -------
    VerifyReport
        ``n_arrays`` and ``n_objects`` checked and every ``Problem`` (``corrupt``, ``missing``,
        ``metadata``) with its store key; ``ok`` is True when there is none.

    Raises
    ------
    StoreNotFoundError
        Nothing at *url*.
    NotACacheError, SchemaVersionError
        Something that is not an actstore cache, or one of a newer schema.
    UnsafeCacheError
        Metadata that would make zarr run code or leave the cache (refused before reading).
    """
    cache = open_cache(url, mode="r", storage_options=storage_options)
    report = VerifyReport(url=cache.url)
    complete_blocks: dict[str, np.ndarray] = {}
    for name, problem in sorted(cache.scan.damaged_sets.items()):  # spec unreadable at open
        report.problems.append(Problem(kind="metadata", key=f"{name}/zarr.json", detail=problem))
    for name in [n for n in cache.prompt_sets if n not in cache.scan.damaged_sets]:
        info = cache.set_info(name)
        n_blocks = int(info["layout"]["n_blocks"])
        done = np.zeros(n_blocks, bool)
        if info.get("ready"):
            # from the listing of marker objects: one damaged marker (named below, in the chunk
            # loop) must not hide the state of every other block
            done[:] = True
            done[missing_from_listing(cache.store, name, n_blocks)] = False
        complete_blocks[name] = done
    arrays = list(iter_arrays_safely(cache.store))
    bar = Progress(progress_label, sum(_n_objects(a) for _, a in arrays), "chunks")
    for path, arr in arrays:
        if isinstance(arr, Exception):
            report.problems.append(
                Problem(
                    kind="metadata",
                    key=f"{path}/zarr.json",
                    detail=f"{type(arr).__name__}: {arr}",
                )
            )
            continue
        report.n_arrays += 1
        set_name = path.split("/", 1)[0]
        hooks = cache.set_info(set_name)["spec"]["hooks"] if set_name in complete_blocks else []
        is_hook = "/" in path and path.split("/", 1)[1] in hooks
        is_done = path.endswith(f"/{DONE_ARRAY}")
        floor = min_shard_bytes(arr)
        for coords, sel, key in chunk_grid(arr):
            bar.update()
            full_key = f"{path}/{key}"
            exists = sync(cache.store.exists(full_key))
            if not exists:
                if is_hook and complete_blocks[set_name][coords[0]]:
                    report.problems.append(
                        Problem(kind="missing", key=full_key, detail="block recorded complete")
                    )
                elif not is_hook and not is_done and arr.size:
                    report.problems.append(
                        Problem(kind="missing", key=full_key, detail="metadata chunk absent")
                    )
                continue
            report.n_objects += 1
            # a shard cut shorter than its index reads silently as fill values: name it
            if arr.shards is not None and sync(cache.store.getsize(full_key)) < floor:
                report.problems.append(
                    Problem(kind="corrupt", key=full_key, detail="truncated below its shard index")
                )
                continue
            try:
                arr[sel]
            except Exception as exc:  # any decode failure means the bytes are damaged
                report.problems.append(
                    Problem(kind="corrupt", key=full_key, detail=f"{type(exc).__name__}: {exc}")
                )
    bar.close()
    from actstore.store.core._consolidated import stale_consolidated

    for key, detail in stale_consolidated(cache.store, cache.url):
        report.problems.append(Problem(kind="consolidated", key=key, detail=detail))
    return report


def _n_objects(arr: Any) -> int:
    if isinstance(arr, Exception):
        return 0
    outer = arr.shards or arr.chunks
    return int(np.prod([max(1, -(-s // c)) for s, c in zip(arr.shape, outer)]))


def format_report(report: VerifyReport, *, as_json: bool = False) -> str:
    """Text of a :func:`verify_cache` report (what ``actstore verify`` prints).

    Parameters
    ----------
    report
        The report :func:`verify_cache` returned.
    as_json
        Return the report as indented JSON instead of one line per problem and a summary.

    Returns
    -------
    str
        One line per problem (``kind: key (detail)``), then a summary line; or the JSON.
    """
    if as_json:
        return dumps(report.to_json(), indent=2)
    lines = [f"{p.kind}: {p.key} ({p.detail})" for p in report.problems]
    status = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    lines.append(
        f"{report.url}: {status}; checked {report.n_objects} chunk/shard files in "
        f"{report.n_arrays} arrays"
    )
    return "\n".join(lines)
