"""The walk behind :func:`~actstore.store.format._safety.scan_store`: read every ``zarr.json`` of
a hierarchy (bounded), check it against the allow-lists and limits of
:mod:`actstore.store.format._safety_limits`, and record damage (see
:mod:`actstore.store.format._safety` for what is refused and why)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from typing import Any

from zarr.buffer import default_buffer_prototype

from actstore.errors import UnsafeCacheError
from actstore.store.format._safety_limits import (
    _ARRAY_KEYS,
    _V2_METADATA,
    ALLOWED_CODECS,
    ALLOWED_DATA_TYPES,
    MAX_CHUNK_BYTES,
    MAX_CHUNKS_PER_SHARD,
    MAX_GROUP_DEPTH,
    MAX_INDEX_LENGTH,
    MAX_JSON_DEPTH,
    MAX_METADATA_BYTES,
    MAX_NDIM,
    MAX_NODES,
    MAX_STORED_OBJECTS,
    ScanResult,
    _Damaged,
    _depth_ok,
    _int_list,
    _unsafe,
    check_key,
)
from actstore.store.format._safety_spec import check_prompt_set
from actstore.store.format._zarr import build_metadata

__all__ = ["_Scanner", "_zarr_parses"]


class _Scanner:
    def __init__(self, store: Any, url: str) -> None:
        self.store = store
        self.url = url
        self.result = ScanResult()
        self.proto = default_buffer_prototype()

    # -- reading one document -------------------------------------------------------------
    async def _read_json(self, key: str) -> Any:
        try:
            size = await self.store.getsize(key)
        except Exception:  # a store without sizes: bounded after reading instead
            size = None
        if size is not None and size > MAX_METADATA_BYTES:
            raise _unsafe(
                self.url,
                key,
                f"a metadata document of at most {MAX_METADATA_BYTES} bytes",
                f"{size} bytes",
            )
        buf = await self.store.get(key, prototype=self.proto)
        if buf is None:
            raise _Damaged("missing")
        raw = buf.to_bytes()
        self.result.digests[key] = (len(raw), hashlib.md5(raw, usedforsecurity=False).hexdigest())
        if len(raw) > MAX_METADATA_BYTES:
            raise _unsafe(
                self.url,
                key,
                f"a metadata document of at most {MAX_METADATA_BYTES} bytes",
                f"{len(raw)} bytes",
            )
        try:
            doc = json.loads(raw)
        except RecursionError as exc:
            raise _unsafe(
                self.url, key, f"JSON nested at most {MAX_JSON_DEPTH} deep", "deeper nesting"
            ) from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Damaged(f"not valid JSON ({exc})") from exc
        if not _depth_ok(doc):
            raise _unsafe(
                self.url, key, f"JSON nested at most {MAX_JSON_DEPTH} deep", "deeper nesting"
            )
        return self.check_doc(key, doc)

    def check_doc(self, key: str, doc: Any) -> dict[str, Any]:
        """The checks every node document gets (also one taken from consolidated metadata);
        records the document, without any ``consolidated_metadata``, as what zarr will use."""
        if not isinstance(doc, dict):
            raise _Damaged(f"expected a JSON object, got {type(doc).__name__}")
        if doc.get("zarr_format") != 3:
            raise _Damaged(f"expected zarr_format 3, got {doc.get('zarr_format')!r}")
        if doc.get("node_type") not in ("group", "array"):
            raise _Damaged(f"expected node_type 'group' or 'array', got {doc.get('node_type')!r}")
        attrs = doc.get("attributes", {})
        if not isinstance(attrs, dict):
            raise _Damaged(f"expected attributes as a JSON object, got {type(attrs).__name__}")
        # zarr would take a group's members from this field instead of their own documents:
        # never handed on (see actstore.store.core._consolidated), so never used unchecked
        doc = {k: v for k, v in doc.items() if k != "consolidated_metadata"}
        self.result.docs[key] = doc
        return doc

    # -- walking the hierarchy ------------------------------------------------------------
    async def walk(self) -> None:
        if not await self.store.exists("zarr.json"):
            for v2 in (".zgroup", ".zarray"):
                if await self.store.exists(v2):
                    raise self._v2(v2)
        root = await self._node("", depth=0)
        if root is None:
            return
        if root.get("node_type") != "group":
            self.result.damaged["zarr.json"] = "expected a group at the cache root, got an array"
            self.result.unreadable_groups.append("zarr.json")

    async def _node(self, path: str, depth: int) -> dict[str, Any] | None:
        key = f"{path}/zarr.json" if path else "zarr.json"
        if self.result.n_groups + self.result.n_arrays >= MAX_NODES:
            raise _unsafe(self.url, key, f"at most {MAX_NODES} groups and arrays", "more")
        try:
            doc = await self._read_json(key)
        except _Damaged as exc:
            self.result.damaged[key] = str(exc)
            if depth <= 1:  # the root and its children: zarr parses these to list prompt sets
                self.result.unreadable_groups.append(key)
            return None
        if doc["node_type"] == "array":
            self.result.n_arrays += 1
            try:
                self._check_array(path, key, doc)
                _zarr_parses(doc)
            except _Damaged as exc:
                self.result.damaged[key] = str(exc)
            return doc
        try:
            _zarr_parses(doc)
        except _Damaged as exc:
            self.result.damaged[key] = str(exc)
            if depth <= 1:
                self.result.unreadable_groups.append(key)
            return None
        self.result.n_groups += 1
        if depth >= MAX_GROUP_DEPTH:
            raise _unsafe(self.url, key, f"groups nested at most {MAX_GROUP_DEPTH} deep", "more")
        children = await self._children(path)
        # Every sibling runs to completion before a failure is raised: a task left running would
        # report its own error at interpreter exit, and the first failure in listing order is
        # the same on every run.
        results = await asyncio.gather(
            *(self._child(path, c, depth) for c in children), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r
        docs = results
        if path and path.count("/") == 0:
            self._check_prompt_set(path, key, doc, dict(zip(children, docs)))
        return doc

    async def _children(self, path: str) -> list[str]:
        prefix = f"{path}/" if path else ""
        names: list[str] = []
        async for name in self.store.list_dir(prefix):
            name = name.rstrip("/")
            if name == "zarr.json":
                continue
            where = f"{prefix}{name}"
            check_key(where, what="node name")
            if name in _V2_METADATA:
                raise self._v2(where)
            names.append(name)
        return sorted(names)

    def _v2(self, key: str) -> UnsafeCacheError:
        return _unsafe(
            self.url,
            key,
            "Zarr v3 metadata only (zarr.json)",
            "Zarr v2 metadata",
            "actstore never reads Zarr v2 nodes (their object codecs can unpickle data): "
            "remove it or re-export the cache with `actstore copy`",
        )

    async def _child(self, path: str, name: str, depth: int) -> dict[str, Any] | None:
        child = f"{path}/{name}" if path else name
        if await self.store.exists(f"{child}/zarr.json"):
            return await self._node(child, depth + 1)
        for v2 in (".zarray", ".zgroup"):
            if await self.store.exists(f"{child}/{v2}"):
                raise self._v2(f"{child}/{v2}")
        return None  # not a node (zarr ignores it too)

    # -- one array ------------------------------------------------------------------------
    def _check_array(self, path: str, key: str, doc: dict[str, Any]) -> None:
        url = self.url
        extra = sorted(set(doc) - _ARRAY_KEYS)
        for name in extra:
            value = doc[name]
            if not (isinstance(value, dict) and value.get("must_understand") is False):
                raise _unsafe(
                    url, key, "only the Zarr v3 array fields", f"the unknown field {name!r}"
                )
        dtype = doc.get("data_type")
        if not isinstance(dtype, str) or dtype not in ALLOWED_DATA_TYPES:
            raise _unsafe(
                url,
                key,
                f"array {path!r} with a data type among {sorted(ALLOWED_DATA_TYPES)}",
                f"data type {json.dumps(dtype)[:100]}",
                "actstore stores only numbers, bool and strings",
            )
        shape = _int_list(doc.get("shape"), "shape", minimum=0)
        if len(shape) > MAX_NDIM:
            raise _unsafe(url, key, f"at most {MAX_NDIM} dimensions", f"{len(shape)}")
        grid = doc.get("chunk_grid")
        if not isinstance(grid, dict) or grid.get("name") != "regular":
            raise _unsafe(
                url, key, f"array {path!r} with a regular chunk grid", f"chunk grid {grid!r:.100}"
            )
        conf = grid.get("configuration")
        outer = _int_list(
            conf.get("chunk_shape") if isinstance(conf, dict) else None, "chunk_shape", minimum=1
        )
        if len(outer) != len(shape):
            raise _Damaged(f"expected chunk_shape of {len(shape)} dims, got {outer}")
        enc = doc.get("chunk_key_encoding")
        if not isinstance(enc, dict) or enc.get("name") not in ("default", "v2"):
            raise _Damaged(f"expected chunk_key_encoding 'default' or 'v2', got {enc!r:.100}")
        enc_conf = enc.get("configuration") or {}
        sep = enc_conf.get("separator", "/") if isinstance(enc_conf, dict) else None
        if sep not in ("/", "."):
            raise _Damaged(f"expected chunk key separator '/' or '.', got {sep!r:.20}")
        transformers = doc.get("storage_transformers", [])
        if transformers not in ([], None):
            raise _unsafe(
                url, key, f"array {path!r} without storage transformers", f"{transformers!r:.100}"
            )
        names = doc.get("dimension_names")
        if names is not None and (
            not isinstance(names, list)
            or len(names) != len(shape)
            or not all(n is None or isinstance(n, str) for n in names)
        ):
            raise _Damaged(f"expected {len(shape)} dimension names, got {names!r:.100}")
        codecs = doc.get("codecs")
        if not isinstance(codecs, list) or not codecs:
            raise _Damaged(f"expected a list of codecs, got {codecs!r:.100}")
        inner = self._check_codecs(path, key, codecs, outer)
        n_objects = math.prod(-(-s // c) for s, c in zip(shape, outer))
        if n_objects > MAX_STORED_OBJECTS:
            raise _unsafe(
                url,
                key,
                f"array {path!r} of at most {MAX_STORED_OBJECTS} shards/chunks",
                f"{n_objects} (shape {shape}, chunks {outer})",
            )
        chunk_bytes = math.prod(inner) * ALLOWED_DATA_TYPES[dtype]
        if chunk_bytes > MAX_CHUNK_BYTES:
            raise _unsafe(
                url,
                key,
                f"array {path!r} with chunks of at most {MAX_CHUNK_BYTES} bytes decoded",
                f"chunks {inner} of {chunk_bytes} bytes",
            )
        dim = names[0] if names and len(names) == 1 else None
        if dim is not None and path.rsplit("/", 1)[-1] == dim and shape[0] > MAX_INDEX_LENGTH:
            raise _unsafe(
                url,
                key,
                f"index coordinate {path!r} of at most {MAX_INDEX_LENGTH} values",
                f"{shape[0]}",
            )

    def _check_codecs(self, path: str, key: str, codecs: list[Any], outer: list[int]) -> list[int]:
        """Check a codec pipeline (recursively into shards); return the decoded chunk shape."""
        inner = outer
        for codec in codecs:
            name = codec if isinstance(codec, str) else None
            if isinstance(codec, dict):
                name = codec.get("name")
            if isinstance(codec, dict) and not isinstance(codec.get("configuration", {}), dict):
                raise _Damaged(f"expected codec configuration objects, got {codec!r:.100}")
            if not isinstance(name, str) or name not in ALLOWED_CODECS:
                raise _unsafe(
                    self.url,
                    key,
                    f"array {path!r} with codecs among {sorted(ALLOWED_CODECS)}",
                    f"codec {json.dumps(name)[:100]}",
                    "actstore never runs other codecs on a shared cache: ask its author to "
                    "re-export it with `actstore copy`",
                )
            if name == "sharding_indexed":
                conf = codec.get("configuration") if isinstance(codec, dict) else None
                if not isinstance(conf, dict):
                    raise _Damaged("expected a sharding_indexed configuration")
                inner = _int_list(conf.get("chunk_shape"), "shard chunk_shape", minimum=1)
                if len(inner) != len(outer):
                    raise _Damaged(f"expected a shard chunk_shape of {len(outer)} dims")
                per_shard = math.prod(-(-s // c) for s, c in zip(outer, inner))
                if per_shard > MAX_CHUNKS_PER_SHARD:
                    raise _unsafe(
                        self.url,
                        key,
                        f"array {path!r} with at most {MAX_CHUNKS_PER_SHARD} chunks per shard",
                        f"{per_shard}",
                    )
                for sub in ("codecs", "index_codecs"):
                    pipeline = conf.get(sub, [])
                    if not isinstance(pipeline, list):
                        raise _Damaged(f"expected sharding {sub} as a list")
                    self._check_codecs(path, key, pipeline, inner)
        return inner

    # -- a prompt set: its spec against its arrays ----------------------------------------
    def _check_prompt_set(
        self, path: str, key: str, doc: dict[str, Any], children: dict[str, Any]
    ) -> None:
        try:
            check_prompt_set(path, doc.get("attributes", {}), children)
        except _Damaged as exc:
            self.result.damaged_sets[path] = str(exc)
        except UnsafeCacheError as exc:
            raise _unsafe(self.url, key, "a prompt set of bounded size", str(exc)) from exc


def _zarr_parses(doc: dict[str, Any]) -> None:
    """Parse the document with zarr's own metadata classes (pure parsing, no I/O; only codecs of
    the allow-list reach this point). A hostile document can trip any error inside that parser,
    so every exception here means "damaged"."""
    try:
        build_metadata(json.loads(json.dumps(doc)))
    except Exception as exc:
        raise _Damaged(f"metadata zarr cannot read ({type(exc).__name__}: {exc})") from exc
