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
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import WrapperStore

from actstore.errors import UnsafeCacheError
from actstore.store._safety_limits import (
    MAX_GROUP_DEPTH,
    MAX_METADATA_BYTES,
    MAX_NODES,
    ScanResult,
    _Damaged,
    _unsafe,
    check_key,
)

if TYPE_CHECKING:
    from actstore.store._cache import Cache

__all__ = [
    "CONSOLIDATED",
    "MetadataStore",
    "metadata_change",
    "read_consolidated",
    "reconsolidate",
    "stale_consolidated",
]

CONSOLIDATED = "consolidated_metadata"
#: Key, inside the root's consolidated block, of each node document's (size, md5) as stored
DIGESTS = "actstore_digests"
_META_NAMES = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})
_EMPTY = {"kind": "inline", "must_understand": False, "metadata": {}}


def _node_key(path: str) -> str:
    return f"{path}/zarr.json" if path else "zarr.json"


def _node_path(key: str) -> str:
    return key[: -len("zarr.json")].rstrip("/")


def _is_meta(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in _META_NAMES


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != CONSOLIDATED}


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, allow_nan=True).encode()


# -- the store zarr and xarray read through -------------------------------------------------
class MetadataStore(WrapperStore[Any]):
    """A store whose metadata reads come from checked documents (see the module docstring).

    Parameters
    ----------
    store
        The real store (local directory, zip, fsspec).
    pins
        ``zarr.json`` key -> bytes to answer with (the consolidated path); ``None`` reads each
        document from *store* and removes its ``consolidated_metadata`` field.
    """

    def __init__(self, store: Any, pins: dict[str, bytes] | None = None) -> None:
        super().__init__(store)
        self.pins = pins
        self._listing: tuple[str, list[str]] | None = None

    def _with_store(self, store: Any) -> MetadataStore:
        return type(self)(store, self.pins)

    @property
    def pinned(self) -> bool:
        return self.pins is not None

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        if not _is_meta(key):
            return await self._store.get(key, prototype, byte_range)
        if self.pins is not None:
            raw = self.pins.get(key)
        else:
            buf = await self._store.get(key, prototype)
            raw = None if buf is None else _without_consolidated(buf.to_bytes())
        if raw is None:
            return None
        if byte_range is not None:  # pragma: no cover - zarr reads metadata whole
            raise ValueError(f"expected a whole read of metadata {key!r}, got {byte_range}")
        return prototype.buffer.from_bytes(raw)

    async def exists(self, key: str) -> bool:
        if self.pins is not None and _is_meta(key):
            return key in self.pins
        return await self._store.exists(key)

    async def getsize(self, key: str) -> int:
        if self.pins is not None and _is_meta(key):
            if key not in self.pins:
                raise FileNotFoundError(key)
            return len(self.pins[key])
        return await self._store.getsize(key)

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        if self.pins is None:
            async for name in self._store.list_dir(prefix):
                yield name
            return
        base = prefix.rstrip("/")
        names = set()
        for key in self.pins:
            path = _node_path(key)
            parent, _, name = path.rpartition("/")
            if path and parent == base:
                names.add(name)
        for name in sorted(names):
            yield name

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        if self._listing is not None and prefix.startswith(self._listing[0]):
            for key in self._listing[1]:
                if key.startswith(prefix):
                    yield key
            return
        async for key in self._store.list_prefix(prefix):
            yield key

    @contextlib.contextmanager
    def listing(self, prefix: str) -> Iterator[dict[str, tuple[int, str | None]] | None]:
        """List every key below *prefix* once (one request per 1000 keys on S3), with sizes and
        S3 ETags; ``list_prefix`` inside answers from that list. Yields ``None`` (and lists
        nothing) for a store that cannot list sizes."""
        found = _detailed_listing(self._store, prefix)
        if found is not None:
            self._listing = (prefix, sorted(found))
        try:
            yield found
        finally:
            self._listing = None


def _detailed_listing(store: Any, prefix: str) -> dict[str, tuple[int, str | None]] | None:
    """key -> (size, md5 hex from the S3 ETag or None) below *prefix* of an fsspec store."""
    from zarr.storage import FsspecStore

    if not isinstance(store, FsspecStore):
        return None
    base = store.path.strip("/")
    try:
        infos = sync(store.fs._find(f"{base}/{prefix}".rstrip("/"), detail=True))
    except Exception:  # no listing with details here: the caller scans file by file
        return None
    out: dict[str, tuple[int, str | None]] = {}
    for path, info in infos.items():
        path = path.strip("/")
        if not path.startswith(f"{base}/") or info.get("type") == "directory":
            continue
        etag = str(info.get("ETag") or info.get("etag") or "").strip('"').lower()
        md5 = etag if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag) else None
        out[path[len(base) + 1 :]] = (int(info.get("size") or 0), md5)
    return out


def _without_consolidated(raw: bytes) -> bytes:
    if CONSOLIDATED.encode() not in raw:
        return raw
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return raw  # damaged: zarr and the scan report it as before
    return _dumps(_strip(doc)) if isinstance(doc, dict) else raw


# -- reading ---------------------------------------------------------------------------------
def read_consolidated(store: Any, url: str) -> tuple[ScanResult, dict[str, bytes]] | None:
    """Check the root's consolidated metadata like the per-file scan; return the result and the
    documents to pin, or ``None`` when there is none, or it is damaged or inconsistent (the
    caller then scans file by file, which names the damage).

    Raises :class:`UnsafeCacheError` for any document the per-file scan would refuse.
    """
    from actstore.store._safety import _Scanner, _zarr_parses

    scanner = _Scanner(store, url)
    try:
        root = sync(_read_raw_root(scanner))
    except _Damaged:
        return None
    if root is None:
        return None
    block = root.get(CONSOLIDATED)
    if not (
        isinstance(block, dict)
        and block.get("kind") == "inline"
        and isinstance(block.get("metadata"), dict)
    ):
        return None
    entries: dict[str, Any] = block["metadata"]
    if len(entries) >= MAX_NODES:
        raise _unsafe(url, "zarr.json", f"at most {MAX_NODES} groups and arrays", "more")
    result = scanner.result
    try:
        root_doc = scanner.check_doc("zarr.json", root)
        if root_doc["node_type"] != "group":
            return None
        _zarr_parses(root_doc)
        docs: dict[str, dict[str, Any]] = {"": root_doc}
        for path in sorted(entries):  # parents sort before their children
            check_key(path, what="node name")
            if path.count("/") >= MAX_GROUP_DEPTH:
                raise _unsafe(url, "zarr.json", f"groups nested at most {MAX_GROUP_DEPTH}", path)
            parent = path.rpartition("/")[0]
            if docs.get(parent, {}).get("node_type") != "group":
                return None  # a node without its group: not what consolidation writes
            key = _node_key(path)
            doc = scanner.check_doc(key, entries[path])
            if doc["node_type"] == "array":
                result.n_arrays += 1
                scanner._check_array(path, key, doc)
            else:
                result.n_groups += 1
            _zarr_parses(doc)
            docs[path] = doc
        for path, doc in docs.items():
            if path and "/" not in path and doc["node_type"] == "group":
                children = {
                    p.rpartition("/")[2]: d for p, d in docs.items() if p.rpartition("/")[0] == path
                }
                scanner._check_prompt_set(path, _node_key(path), doc, children)
    except _Damaged:
        return None
    except UnsafeCacheError as exc:
        raise UnsafeCacheError(f"{exc} (in the consolidated metadata of zarr.json)") from None
    if result.damaged or result.damaged_sets or not _spans_consistent(docs):
        return None
    recorded = block.get(DIGESTS)
    if not isinstance(recorded, dict):
        return None  # consolidated by another tool: nothing to tell a stale copy by
    result.digests = {}
    for key, value in recorded.items():
        if not (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], int)
            and isinstance(value[1], str)
        ):
            return None
        result.digests[str(key)] = (value[0], value[1])
    result.consolidated = True
    pins = {_node_key(p): _dumps(d) for p, d in docs.items()}
    return result, pins


async def _read_raw_root(scanner: Any) -> dict[str, Any] | None:
    """The root document, bounded and parsed as the scan reads it, with its consolidated field
    (``check_doc`` has not removed it yet: ``_read_json`` is bypassed on purpose)."""
    from actstore.store._safety import MAX_JSON_DEPTH, _depth_ok

    proto = default_buffer_prototype()
    store, url = scanner.store, scanner.url
    try:
        size = await store.getsize("zarr.json")
    except Exception:  # a store without sizes: bounded after reading instead
        size = None
    if size is not None and size > MAX_METADATA_BYTES:
        raise _unsafe(
            url,
            "zarr.json",
            f"a metadata document of at most {MAX_METADATA_BYTES}",
            f"{size} bytes",
        )
    buf = await store.get("zarr.json", prototype=proto)
    if buf is None:
        return None
    raw = buf.to_bytes()
    if len(raw) > MAX_METADATA_BYTES:
        raise _unsafe(
            url,
            "zarr.json",
            f"a metadata document of at most {MAX_METADATA_BYTES}",
            f"{len(raw)} bytes",
        )
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not _depth_ok(doc):
        raise _unsafe(url, "zarr.json", f"JSON nested at most {MAX_JSON_DEPTH} deep", "deeper")
    return doc if isinstance(doc, dict) else None


def _spans_consistent(docs: dict[str, dict[str, Any]]) -> bool:
    """A prompt set's recorded span names must be as many as its ``span`` array holds."""
    from actstore.store._schema import ATTR_KEY

    for path, doc in docs.items():
        info = doc.get("attributes", {}).get(ATTR_KEY)
        if not (path and "/" not in path and isinstance(info, dict) and "spans" in info):
            continue
        spans, arr = info["spans"], docs.get(f"{path}/span", {})
        if not isinstance(spans, list) or arr.get("shape") != [len(spans)]:
            return False
    return True


def nodes_match(
    store: MetadataStore,
    listed: dict[str, tuple[int, str | None]],
    digests: dict[str, tuple[int, str]],
    prefix: str,
) -> bool:
    """True when the ``zarr.json`` objects listed below *prefix* are exactly the consolidated
    ones, each of the size (and, where S3 gives it, the MD5) recorded when consolidating."""
    nodes = {k: v for k, v in listed.items() if k.rsplit("/", 1)[-1] == "zarr.json"}
    if set(nodes) != {k for k in store.pins or {} if k.startswith(prefix)}:
        return False
    for key, (size, md5) in nodes.items():
        if key == "zarr.json":
            continue  # the document read itself
        want = digests.get(key)
        if want is None or want[0] != size or (md5 is not None and md5 != want[1]):
            return False
    return True


# -- writing ---------------------------------------------------------------------------------
def _scan(store: Any, url: str) -> ScanResult | None:
    """The per-file scan of every node, or ``None`` when any document is damaged."""
    from actstore.store._safety import scan_store

    raw = store._store if isinstance(store, MetadataStore) else store
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
    target = store._store if isinstance(store, MetadataStore) else store
    sync(target.set(key, buf))


def invalidate(store: Any, path: str = "") -> None:
    """Remove the consolidated field from the root and every group above and at *path*."""
    parts = [p for p in path.strip("/").split("/") if p]
    raw_store = store._store if isinstance(store, MetadataStore) else store
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
    scan = _scan(store, url)
    for _ in range(attempts):
        if scan is None:
            break
        docs = {_node_path(k): d for k, d in scan.docs.items()}
        out = _consolidated_docs(docs, scan.digests)
        if len(out.get("zarr.json", b"")) > MAX_METADATA_BYTES:
            break
        for key in sorted(out, key=lambda k: (-k.count("/"), k)):  # the root last
            _set(store, key, out[key])
        after = _scan(store, url)
        if after is not None and {_node_path(k): d for k, d in after.docs.items()} == docs:
            return True
        scan = after
    invalidate(store)
    return False


@contextlib.contextmanager
def deferred(cache: Cache) -> Iterator[None]:
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
def metadata_change(cache: Cache, path: str = "") -> Iterator[None]:
    """Around a metadata write below group *path*: invalidate first, reconsolidate after."""
    if getattr(cache, "_deferred", False):  # the whole tree is invalidated already
        yield
        return
    invalidate(cache.store, path)
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # the write's own error is the one to report
            reconsolidate(cache.store, cache.url)
        raise
    reconsolidate(cache.store, cache.url)


def has_consolidated(store: Any) -> bool:
    raw_store = store._store if isinstance(store, MetadataStore) else store
    buf = sync(raw_store.get("zarr.json", prototype=default_buffer_prototype()))
    return buf is not None and CONSOLIDATED.encode() in buf.to_bytes()


def stale_consolidated(store: Any, url: str) -> list[tuple[str, str]]:
    """``(key, problem)`` for every group whose consolidated copy differs from the documents
    stored file by file (what ``actstore verify`` reports and ``repair`` rewrites)."""
    docs = _scan_docs(store, url)
    if docs is None:
        return []  # damaged documents are reported on their own
    raw_store = store._store if isinstance(store, MetadataStore) else store
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


@contextlib.contextmanager
def listed(cache: Cache, group: str | None) -> Iterator[Cache]:
    """Within ``actstore.open``: list the part of the cache being opened once (markers and shard
    checks answer from that list), and fall back to the per-file scan when the nodes listed
    are not exactly the consolidated ones (written since, or by another tool)."""
    store = cache.store
    if not (isinstance(store, MetadataStore) and store.pins is not None):
        yield cache
        return
    top = (group or "").strip("/").split("/")[0]
    prefix = f"{top}/" if top else ""
    with store.listing(prefix) as listed:
        fresh = listed is not None and nodes_match(store, listed, cache.scan.digests, prefix)
        if fresh and (not top or _node_key(top) in store.pins):
            yield cache
            return
    from actstore.store._cache import open_cache

    yield open_cache(cache.url, mode="r", storage_options=cache.storage_options)


def spec_indexes(info: dict[str, Any]) -> dict[str, Any] | None:
    """A prompt set's index coordinates as the writer stores them, from its spec: reading
    them from storage would cost a request each per set. ``None`` when the set does not
    record its span names (written before they were recorded)."""
    import numpy as np

    spec, spans = info["spec"], info.get("spans")
    if not isinstance(spans, list):
        return None
    return {
        "prompt": np.arange(int(spec["n_prompts"]), dtype=np.int64),
        "layer": np.asarray(spec["layers"], dtype=np.int32),
        "token": np.arange(int(spec["n_tokens_max"]), dtype=np.int32),
        "span": np.asarray([str(s) for s in spans], dtype=object),
    }
