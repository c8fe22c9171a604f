"""The one place actstore touches zarr-python internals (``zarr.core``, private names).

zarr's public API (``zarr``, ``zarr.abc``, ``zarr.buffer``, ``zarr.codecs``, ``zarr.dtype``,
``zarr.errors``, ``zarr.storage``) is imported directly wherever it is needed. Everything below is
not part of that API and may move in any zarr release; keeping it here means a zarr upgrade is
checked in one file (pinned: ``zarr>=3.1,<3.2`` in ``pyproject.toml``). What we rely on, and why:

``sync`` (``zarr.core.sync``)
    Runs a coroutine on zarr's own event-loop thread. Stores are async (``store.get``,
    ``store.list_prefix``, ``store.exists``); the store code is synchronous and must use the
    loop zarr already runs, not a second one (fsspec's S3 sessions are bound to it).
``HasEndianness``, ``HasItemSize`` (``zarr.core.dtype.common``) and the JSON float helpers
(``zarr.core.dtype.npy.common``)
    Mix-ins and fill-value (de)serialisers a :class:`zarr.dtype.ZDType` subclass needs; our
    ``bfloat16`` extension data type (:mod:`actstore.store.format._dtype`) is built from them so
    its fill values are written exactly like zarr's own float types.
``build_metadata`` (``zarr.core.group._build_metadata_v3``)
    zarr's parser of one ``zarr.json`` document (pure parsing, no I/O). The safety scan
    (:mod:`actstore.store.format._safety`) runs it on every untrusted document after its own
    checks, so whatever zarr would later refuse is reported as damage at open time instead of
    as a raw exception deep inside a read.
``OpenedZipStore`` (``zarr.storage.ZipStore._sync_open``, ``_zf``, ``_lock``, ``_is_open``)
    zarr's ``ZipStore`` opens local paths only, and presents the zip's root as the store root.
    Our read-only zip store (:class:`actstore.store.format._storage.ZipCacheStore`) opens a zip
    from any fsspec URL and presents one folder of it as the root; it replaces the private open
    hook and hands zarr the :class:`zipfile.ZipFile` where ``ZipStore`` keeps it.
``zip_file`` (``ZipStore._zf``)
    The open :class:`zipfile.ZipFile` behind a zip store: the scan reads its directory (entry
    names and sizes) before anything is read from it.
``unwrap_store`` (``zarr.storage.WrapperStore._store``)
    The store a wrapper (our :class:`~actstore.store.core._metastore.MetadataStore`) wraps:
    consolidation and the fast shard writer work on the raw store underneath.
``async_array`` (``zarr.Array._async_array``)
    The async array behind a :class:`zarr.Array`: the token reader gathers many selections in
    one event-loop round trip instead of one blocking call each.
"""

from __future__ import annotations

import threading
import zipfile
from typing import Any

from zarr.core.dtype.common import HasEndianness, HasItemSize
from zarr.core.dtype.npy.common import (
    check_json_float_v2,
    check_json_float_v3,
    float_from_json_v2,
    float_from_json_v3,
    float_to_json_v3,
)
from zarr.core.group import _build_metadata_v3
from zarr.core.sync import sync
from zarr.storage import WrapperStore, ZipStore

__all__ = [
    "HasEndianness",
    "HasItemSize",
    "OpenedZipStore",
    "async_array",
    "build_metadata",
    "check_json_float_v2",
    "check_json_float_v3",
    "float_from_json_v2",
    "float_from_json_v3",
    "float_to_json_v3",
    "sync",
    "unwrap_store",
    "zip_file",
]


def build_metadata(doc: dict[str, Any]) -> Any:
    """Parse one Zarr v3 ``zarr.json`` document (already JSON-decoded) with zarr's own classes.

    Raises whatever zarr's parser raises for a document it cannot read (any exception type).
    """
    return _build_metadata_v3(doc)


def unwrap_store(store: Any) -> Any:
    """The innermost store under any :class:`zarr.storage.WrapperStore` layers of *store*."""
    while isinstance(store, WrapperStore):
        store = store._store
    return store


def async_array(array: Any) -> Any:
    """The :class:`zarr.AsyncArray` behind the synchronous :class:`zarr.Array` *array*."""
    return array._async_array


def zip_file(store: Any) -> zipfile.ZipFile | None:
    """The open zip file behind a zip store, or None for any other store."""
    return getattr(store, "_zf", None)


class OpenedZipStore(ZipStore):
    """A read-only :class:`zarr.storage.ZipStore` whose zip file a subclass opens itself.

    Subclasses implement :meth:`open_zipfile`; :meth:`open_now` opens the store at once (errors
    then surface at open, not on the first read).
    """

    def open_zipfile(self) -> zipfile.ZipFile:  # pragma: no cover - abstract
        raise NotImplementedError

    def open_now(self) -> None:
        """Open the zip file now (zarr otherwise opens it on the first read)."""
        self._sync_open()

    def _sync_open(self) -> None:
        if self._is_open:
            raise ValueError("store is already open")
        self._lock = threading.RLock()
        self._zf = self.open_zipfile()
        self._is_open = True

    def entry_size(self, key: str) -> int:
        """The uncompressed size of entry *key* from the zip's directory (no read)."""
        with self._lock:
            return int(self._zf.getinfo(key).file_size)
