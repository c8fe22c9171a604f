"""A cache is data, never code: check a cache's metadata before zarr or xarray touch it.

Caches are shared: copied from colleagues, opened from object storage. Before :func:`open_cache`
hands a store to zarr, :func:`scan_store` reads every ``zarr.json`` of the hierarchy itself and

* refuses (:class:`UnsafeCacheError`) codecs and data types outside a short allow-list of plain
  data transforms (no pickle, no object dtype, no codec that a plug-in could register), Zarr v2
  metadata (whose object codecs may unpickle), storage transformers, unknown chunk grids;
* refuses sizes that would allocate what the metadata claims before reading anything: a metadata
  document over :data:`MAX_METADATA_BYTES` or nested deeper than :data:`MAX_JSON_DEPTH`, one
  decoded chunk over :data:`MAX_CHUNK_BYTES`, an array of more than :data:`MAX_STORED_OBJECTS`
  shards/chunks, an index coordinate (which xarray loads eagerly) over :data:`MAX_INDEX_LENGTH`;
  the arrays themselves may be as large as this allows, they stay lazy;
* refuses node names that are not plain path segments (``..``, absolute or backslashed names in a
  zip or object store), so nothing derived from them can point outside the cache;
* records (does not raise) damaged metadata: JSON that does not parse, missing fields, shapes
  that contradict the prompt set's spec. :func:`open_cache` raises for a damaged root or group,
  :func:`actstore.open` for a damaged array of the prompt set asked for, and ``actstore verify``
  lists them all.
"""

from typing import Any

from actstore.store.format._safety_limits import (
    _V2_METADATA,
    ALLOWED_CODECS,
    ALLOWED_DATA_TYPES,
    MAX_CHUNK_BYTES,
    MAX_INDEX_LENGTH,
    MAX_JSON_DEPTH,
    MAX_METADATA_BYTES,
    MAX_STORED_OBJECTS,
    ScanResult,
    _unsafe,
    check_key,
)
from actstore.store.format._scanner import _Scanner
from actstore.store.format._zarr import sync, zip_file

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
    "scan_store",
]


def scan_store(store: Any, url: str) -> ScanResult:
    """Check every ``zarr.json`` of the cache behind *store* (see the module docstring).

    Raises :class:`UnsafeCacheError` for anything that must never be opened; returns the damaged
    metadata it found (key -> problem) for the caller to raise or report.
    """
    scanner = _Scanner(store, url)
    _check_zip_names(store, url)
    sync(scanner.walk())
    return scanner.result


def _check_zip_names(store: Any, url: str) -> None:
    """A zip lists every entry up front: refuse traversal names and oversized metadata there."""
    zf = zip_file(store)
    if zf is None:
        return
    for info in zf.infolist():
        name = info.filename.rstrip("/") if info.is_dir() else info.filename
        if name:
            check_key(name, what="zip entry name")
        base = name.rsplit("/", 1)[-1]
        if base in _V2_METADATA:
            raise _unsafe(url, name, "Zarr v3 metadata only (zarr.json)", "Zarr v2 metadata")
        if base == "zarr.json" and info.file_size > MAX_METADATA_BYTES:
            raise _unsafe(
                url,
                name,
                f"a metadata document of at most {MAX_METADATA_BYTES} bytes",
                f"{info.file_size} bytes",
            )


def damaged_error_message(url: str, key: str, problem: str) -> str:
    return (
        f"expected readable metadata in {key} of {url!r}, got {problem}; the cache is damaged: "
        f"run `actstore verify {url}` to list every damaged part and `actstore repair {url}` "
        "to fix it (or restore the copy)"
    )
