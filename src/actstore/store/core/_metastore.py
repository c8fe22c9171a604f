"""Reading a cache's metadata on the consolidated path: the store zarr and xarray read through,
and the checks that consolidated metadata gets before it is used (see
:mod:`actstore.store.core._consolidated` for the whole design)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from zarr.abc.buffer import Buffer, BufferPrototype
from zarr.abc.store import ByteRequest
from zarr.buffer import default_buffer_prototype
from zarr.storage import WrapperStore

from actstore.errors import UnsafeCacheError
from actstore.store.format._partial import is_partial
from actstore.store.format._safety_limits import (
    MAX_GROUP_DEPTH,
    MAX_JSON_DEPTH,
    MAX_METADATA_BYTES,
    MAX_NODES,
    ScanResult,
    _Damaged,
    _depth_ok,
    _unsafe,
    check_key,
)
from actstore.store.format._scanner import _Scanner, _zarr_parses
from actstore.store.format._schema import ATTR_KEY
from actstore.store.format._zarr import sync

__all__ = ["MetadataStore", "nodes_match", "read_consolidated", "spec_indexes"]

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
                # another writer's in-flight ``<key>.<uuid>.partial`` (zarr's atomic write) is not
                # a node: listing it would make zarr warn about it in every concurrent reader
                if not is_partial(name):
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


def read_consolidated(store: Any, url: str) -> tuple[ScanResult, dict[str, bytes]] | None:
    """Check the root's consolidated metadata like the per-file scan; return the result and the
    documents to pin, or ``None`` when there is none, or it is damaged or inconsistent (the
    caller then scans file by file, which names the damage).

    Raises :class:`UnsafeCacheError` for any document the per-file scan would refuse.
    """
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
        raise UnsafeCacheError(f"{exc} (in the consolidated metadata of zarr.json)") from exc
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
    nodes = {
        k: v
        for k, v in listed.items()
        if k.startswith(prefix) and k.rsplit("/", 1)[-1] == "zarr.json"
    }
    if set(nodes) != {k for k in store.pins or {} if k.startswith(prefix)}:
        return False
    for key, (size, md5) in nodes.items():
        if key == "zarr.json":
            continue  # the document read itself
        want = digests.get(key)
        if want is None or want[0] != size or (md5 is not None and md5 != want[1]):
            return False
    return True


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
