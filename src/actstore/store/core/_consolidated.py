"""Zarr v3 consolidated metadata: a whole cache's metadata in one document, kept true.

Opening a cache on object storage used to cost one round trip per ``zarr.json`` (and a few
more per node for zarr's probing): 140 requests for one prompt set. Every group's ``zarr.json``
now carries the documents of everything below it in its ``consolidated_metadata`` field, the
format zarr-python writes and reads, so ``actstore.open`` reads the root document once and
plain ``xr.open_zarr(url, group=SET)`` reads the set's document once.

Safety (a cache is data, never code):

* :func:`read_consolidated` gives each document inside the consolidated field the checks the
  open-time scan gives a ``zarr.json`` (allow-listed codecs and data types, bounded sizes, plain
  node names, the prompt-set spec against its arrays); one unsafe document refuses the cache.
* What was checked is what is used: :class:`MetadataStore` answers every metadata read from the
  checked documents (``pins``), so zarr and xarray never read a ``zarr.json`` of their own. With
  no pins (the per-file scan) it still removes ``consolidated_metadata`` from each document it
  hands on, so zarr never takes unchecked members from it either.

Freshness (readers never trust a stale document silently):

* Completion markers are chunks, not metadata: block writes never change what is consolidated.
* Every metadata change runs inside :func:`metadata_change`: it first removes the consolidated
  field from the root and from each group above the change, then writes, then
  :func:`reconsolidate` rewrites it, and re-reads to check nothing changed meanwhile. A process
  killed in between leaves no consolidated field, and readers fall back to the per-file scan.
* ``actstore.open`` lists the cache (one request per 1000 objects, which it needs anyway for the
  completion markers) and falls back to the per-file scan when the nodes listed differ from the
  nodes consolidated (a node added or removed by another tool).
* ``actstore verify`` compares every consolidated copy with the document it copies, and
  ``actstore repair`` rewrites stale ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from zarr.buffer import default_buffer_prototype

from actstore.errors import ActstoreError
from actstore.store.core._metastore import (
    _EMPTY,
    CONSOLIDATED,
    DIGESTS,
    _dumps,
    _node_key,
    _node_path,
    _without_consolidated,
)
from actstore.store.core._writer import open_writer
from actstore.store.format._partial import remove_partials
from actstore.store.format._safety import scan_store
from actstore.store.format._safety_limits import MAX_METADATA_BYTES, ScanResult
from actstore.store.format._storage import creation_lock
from actstore.store.format._zarr import sync, unwrap_store

if TYPE_CHECKING:
    from actstore.store.core._handle import CacheHandle

__all__ = [
    "consolidated_writer",
    "deferred",
    "has_consolidated",
    "invalidate",
    "metadata_change",
    "reconsolidate",
    "stale_consolidated",
]


def _scan(store: Any, url: str) -> ScanResult | None:
    """The per-file scan of every node, or ``None`` when any document is damaged."""
    raw = unwrap_store(store)
    result = scan_store(raw, url)
    if result.damaged or result.damaged_sets or result.unreadable_groups:
        return None
    return result


def _scan_docs(store: Any, url: str) -> dict[str, dict[str, Any]] | None:
    """Every node's document (path -> JSON), or ``None`` when any is damaged."""
    result = _scan(store, url)
    return None if result is None else {_node_path(k): d for k, d in result.docs.items()}


def _consolidated_docs(
    docs: dict[str, dict[str, Any]], digests: dict[str, tuple[int, str]] | None = None
) -> dict[str, bytes]:
    """``zarr.json`` key -> the group's document carrying everything below it; the root's also
    records each other document's (size, md5) as it will be stored."""
    out = {}
    for path, doc in sorted(docs.items(), key=lambda kv: -kv[0].count("/") if kv[0] else 1):
        if doc.get("node_type") != "group":
            continue
        base = f"{path}/" if path else ""
        members = {}
        for sub, d in docs.items():
            if sub and sub.startswith(base) and sub != path:
                members[sub[len(base) :]] = (
                    {**d, CONSOLIDATED: _EMPTY} if d.get("node_type") == "group" else d
                )
        block: dict[str, Any] = {**_EMPTY, "metadata": dict(sorted(members.items()))}
        if not path and digests is not None:
            stored = dict(digests)
            for key, raw in out.items():  # the group documents written here, not as scanned
                stored[key] = (len(raw), hashlib.md5(raw, usedforsecurity=False).hexdigest())
            block[DIGESTS] = {k: list(v) for k, v in sorted(stored.items()) if k != "zarr.json"}
        out[_node_key(path)] = _dumps({**doc, CONSOLIDATED: block})
    return out


def _set(store: Any, key: str, raw: bytes) -> None:
    buf = default_buffer_prototype().buffer.from_bytes(raw)
    target = unwrap_store(store)
    sync(target.set(key, buf))


def invalidate(store: Any, path: str = "", url: str | None = None) -> None:
    """Remove the consolidated field from the root and every group above and at *path* (of a
    local cache at *url*: under its creation lock, like every write of a group document)."""
    with _lock(url):
        _invalidate(store, path)


def _lock(url: str | None) -> contextlib.AbstractContextManager[None]:
    return creation_lock(url) if url is not None else contextlib.nullcontext()


def _remove_doc_partials(url: str, docs: dict[str, dict[str, Any]]) -> None:
    """A write of a group document killed mid-way leaves zarr's ``zarr.json.<uuid>.partial``
    beside it; group documents are written only under the creation lock, so none is live."""
    for path in docs:
        if "/" not in path and docs[path].get("node_type") == "group":
            remove_partials(url, path, recursive=False)


def _invalidate(store: Any, path: str = "") -> None:
    parts = [p for p in path.strip("/").split("/") if p]
    raw_store = unwrap_store(store)
    proto = default_buffer_prototype()
    for i in range(len(parts) + 1):
        key = _node_key("/".join(parts[:i]))
        buf = sync(raw_store.get(key, prototype=proto))
        if buf is None or CONSOLIDATED.encode() not in buf.to_bytes():
            continue
        stripped = _without_consolidated(buf.to_bytes())
        if stripped != buf.to_bytes():
            _set(store, key, stripped)


def reconsolidate(store: Any, url: str, *, attempts: int = 3) -> bool:
    """Write every group's consolidated metadata from the documents stored now (root last).

    Re-reads afterwards: when another writer changed a document meanwhile, consolidates again
    (up to *attempts* times), and otherwise removes the root's consolidated field, so a reader
    scans file by file rather than trusting it. A damaged cache, or one whose root document
    would exceed :data:`MAX_METADATA_BYTES`, is left without. Returns True when written.
    """
    if getattr(store, "read_only", False):
        return False
    with _lock(url):
        return _reconsolidate(store, url, attempts)


def _reconsolidate(store: Any, url: str, attempts: int) -> bool:
    scan = _scan(store, url)
    if scan is not None:
        _remove_doc_partials(url, {_node_path(k): d for k, d in scan.docs.items()})
    for _ in range(attempts):
        if scan is None:
            break
        docs = {_node_path(k): d for k, d in scan.docs.items()}
        out = _consolidated_docs(docs, scan.digests)
        if len(out.get("zarr.json", b"")) > MAX_METADATA_BYTES:
            break
        for key in sorted(out, key=lambda k: (-k.count("/"), k)):  # the root last
            md5 = hashlib.md5(out[key], usedforsecurity=False).hexdigest()
            if scan.digests.get(key) != (len(out[key]), md5):  # unchanged bytes stay untouched
                _set(store, key, out[key])
        after = _scan(store, url)
        if after is not None and {_node_path(k): d for k, d in after.docs.items()} == docs:
            return True
        scan = after
    _invalidate(store)
    return False


def consolidated_writer(cache: CacheHandle, name: str, spec: Any, metadata: Any) -> Any:
    """:meth:`Cache.prompt_set_writer`: creating a set changes metadata; resuming one does not
    (it consolidates a cache written before consolidated metadata existed)."""
    try:
        ready = name in cache.prompt_sets and bool(cache.set_info(name).get("ready"))
    except ActstoreError:  # damaged: open_writer names it
        ready = False
    if ready:
        writer = open_writer(cache, name, spec, metadata)
        if not has_consolidated(cache.store):
            reconsolidate(cache.store, cache.url)
        return writer
    with metadata_change(cache, name):
        return open_writer(cache, name, spec, metadata)


@contextlib.contextmanager
def deferred(cache: CacheHandle) -> Iterator[None]:
    """Many metadata changes (a copy): invalidate once, consolidate once at the end."""
    if getattr(cache, "_deferred", False):
        yield
        return
    with metadata_change(cache):
        cache._deferred = True  # type: ignore[attr-defined]
        try:
            yield
        finally:
            cache._deferred = False  # type: ignore[attr-defined]


@contextlib.contextmanager
def metadata_change(cache: CacheHandle, path: str = "") -> Iterator[None]:
    """Around a metadata write below group *path*: invalidate first, reconsolidate after."""
    if getattr(cache, "_deferred", False):  # the whole tree is invalidated already
        yield
        return
    invalidate(cache.store, path, cache.url)
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # the write's own error is the one to report
            reconsolidate(cache.store, cache.url)
        raise
    reconsolidate(cache.store, cache.url)


def has_consolidated(store: Any) -> bool:
    raw_store = unwrap_store(store)
    buf = sync(raw_store.get("zarr.json", prototype=default_buffer_prototype()))
    return buf is not None and CONSOLIDATED.encode() in buf.to_bytes()


def stale_consolidated(store: Any, url: str) -> list[tuple[str, str]]:
    """``(key, problem)`` for every group whose consolidated copy differs from the documents
    stored file by file (what ``actstore verify`` reports and ``repair`` rewrites)."""
    docs = _scan_docs(store, url)
    if docs is None:
        return []  # damaged documents are reported on their own
    raw_store = unwrap_store(store)
    want = _consolidated_docs(docs)
    out = []
    proto = default_buffer_prototype()
    for key in sorted(want):
        buf = sync(raw_store.get(key, prototype=proto))
        try:
            doc = json.loads(buf.to_bytes()) if buf is not None else {}
        except (ValueError, UnicodeDecodeError, RecursionError):
            continue  # reported as damaged metadata
        block = doc.get(CONSOLIDATED) if isinstance(doc, dict) else None
        if block is None:
            continue  # none is never stale: readers scan file by file
        have = block.get("metadata") if isinstance(block, dict) else None
        expected = json.loads(want[key])[CONSOLIDATED]["metadata"]
        if have != expected:
            diff = sorted(
                set(have or {}).symmetric_difference(expected)
                | {k for k in expected if (have or {}).get(k) != expected[k]}
            )
            shown = ", ".join(diff[:5]) + (", ..." if len(diff) > 5 else "")
            out.append((key, f"consolidated metadata differs from the stored nodes ({shown})"))
    return out
