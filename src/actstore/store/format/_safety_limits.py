"""The limits and small checks behind :mod:`actstore.store.format._safety`: what a cache may
contain.

Allow-lists of codecs and data types, size bounds checked before anything is allocated, and the
check that a key is a plain relative path. Kept apart from the scanner so each reads on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from actstore._validate import is_int as _is_int
from actstore.errors import UnsafeCacheError

__all__ = [
    "ALLOWED_CODECS",
    "ALLOWED_DATA_TYPES",
    "MAX_CHUNK_BYTES",
    "MAX_INDEX_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_METADATA_BYTES",
    "MAX_STORED_OBJECTS",
    "ScanResult",
    "check_key",
]

#: Codecs that only transform bytes and numbers (the ones actstore and xarray write, and two more
#: plain ones of the Zarr v3 core spec). Anything else, including every ``numcodecs.*`` plug-in, is
#: refused before a chunk is read.
ALLOWED_CODECS = frozenset(
    {"bytes", "transpose", "zstd", "gzip", "crc32c", "sharding_indexed", "vlen-utf8"}
)
#: Data types: numbers, bool, UTF-8 strings and actstore's bfloat16; no object or void types.
ALLOWED_DATA_TYPES: dict[str, int] = {
    "bool": 1,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "uint8": 1,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
    "float16": 2,
    "float32": 4,
    "float64": 8,
    "bfloat16": 2,
    "string": 16,  # one decoded element is a Python/numpy string object: count it as 16 bytes
}
#: Largest ``zarr.json`` read (attributes live in it; a subset copy of 10^6 prompts needs ~8 MiB).
MAX_METADATA_BYTES = 32 * 2**20
#: Deepest nesting of lists/objects in a metadata document (json recursion would crash deeper).
MAX_JSON_DEPTH = 64
#: Largest decoded chunk (zarr allocates one whole chunk per read); actstore writes ~1 MiB chunks.
MAX_CHUNK_BYTES = 512 * 2**20
#: Most shards/chunks one array may consist of (listing and bookkeeping are linear in it).
MAX_STORED_OBJECTS = 2**22
#: Inner chunks per shard (the shard index, 16 bytes per inner chunk, is read whole).
MAX_CHUNKS_PER_SHARD = 2**20
#: Longest index coordinate (``prompt``, ``layer``, ``token``, ...): xarray loads these on open.
MAX_INDEX_LENGTH = 2**27
MAX_NDIM = 16
MAX_NODES = 100_000
MAX_GROUP_DEPTH = 32

_V2_METADATA = frozenset({".zarray", ".zgroup", ".zattrs", ".zmetadata"})
_ARRAY_KEYS = frozenset(
    {
        "zarr_format",
        "node_type",
        "shape",
        "data_type",
        "chunk_grid",
        "chunk_key_encoding",
        "fill_value",
        "codecs",
        "attributes",
        "dimension_names",
        "storage_transformers",
    }
)
_BAD_SEGMENT = re.compile(r"[\\\x00]|^[A-Za-z]:")


@dataclass
class ScanResult:
    """What :func:`scan_store` found: damaged metadata (key -> problem) and node counts."""

    damaged: dict[str, str] = field(default_factory=dict)
    unreadable_groups: list[str] = field(default_factory=list)
    damaged_sets: dict[str, str] = field(default_factory=dict)
    n_groups: int = 0
    n_arrays: int = 0
    #: every node document read (key -> JSON object without ``consolidated_metadata``)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    #: key -> (size, md5 hex) of every document as stored
    digests: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False)
    #: True when the documents came from the root's consolidated metadata (one read)
    consolidated: bool = False

    def damaged_under(self, prefix: str) -> dict[str, str]:
        """Damaged keys inside the group *prefix* (``""``: all)."""
        prefix = prefix.strip("/")
        found = {
            k: v
            for k, v in self.damaged.items()
            if not prefix or k == f"{prefix}/zarr.json" or k.startswith(f"{prefix}/")
        }
        for name, problem in self.damaged_sets.items():
            if not prefix or name == prefix:
                found.setdefault(f"{name}/zarr.json", problem)
        return found


class _Damaged(Exception):
    """Internal: metadata that does not describe a valid node (recorded, not raised)."""


def _unsafe(
    url: str, key: str, expected: str, got: str, fix: str | None = None
) -> UnsafeCacheError:
    return UnsafeCacheError(
        f"expected {expected}, got {got} in {key} of {url!r}; refusing to open it (a cache is "
        f"data, never code){'; ' + fix if fix else ''}"
    )


def check_key(key: str, *, what: str = "key") -> str:
    """Return *key* if it is a relative path of plain segments; raise :class:`UnsafeCacheError`.

    Refuses empty, ``.`` and ``..`` segments, absolute paths, backslashes, NUL bytes and drive
    letters: a key from a hostile listing must never name a file outside the destination.
    """
    if not isinstance(key, str) or not key or key.startswith("/"):
        raise UnsafeCacheError(
            f"expected a relative {what} inside the cache, got {key!r}; the source is damaged or "
            "hostile: nothing was written outside the destination"
        )
    for seg in key.split("/"):
        if seg in ("", ".", "..") or _BAD_SEGMENT.search(seg):
            raise UnsafeCacheError(
                f"expected a {what} made of plain path segments, got {key!r} (segment {seg!r}); "
                "the source is damaged or hostile: nothing was written outside the destination"
            )
    return key


def _depth_ok(doc: Any) -> bool:
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


def _int_list(value: Any, what: str, *, minimum: int) -> list[int]:
    if not isinstance(value, list) or not all(_is_int(v) and v >= minimum for v in value):
        raise _Damaged(f"expected {what} as a list of integers >= {minimum}, got {value!r}")
    return value
