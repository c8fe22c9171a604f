"""Turn a path or fsspec URL into a zarr store (local directory, ``.zip`` file, any fsspec URL)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zarr.abc.store import Store
from zarr.storage import FsspecStore, LocalStore, ZipStore

from actstore.errors import InvalidArgumentError

__all__ = ["creation_lock", "is_local", "is_zip", "local_path", "make_store", "normalize_url"]


def normalize_url(url: str | os.PathLike[str]) -> str:
    """A string URL; local paths stay paths (``file://`` is stripped)."""
    if isinstance(url, Path | os.PathLike):
        return os.fspath(url)
    if not isinstance(url, str) or not url:
        raise InvalidArgumentError(f"expected a cache path or URL, got {url!r}")
    if url.startswith("file://"):
        return url[len("file://") :]
    return url


def is_local(url: str) -> bool:
    return "://" not in url and "::" not in url


def is_zip(url: str) -> bool:
    return is_local(url) and url.lower().endswith(".zip")


def local_path(url: str) -> Path | None:
    return Path(url) if is_local(url) else None


def make_store(
    url: str, *, read_only: bool, storage_options: dict[str, Any] | None = None
) -> Store:
    """Open the zarr store behind *url* (does not check that a cache is there)."""
    if is_zip(url):
        if not read_only:
            raise InvalidArgumentError(
                f"expected a writable cache location, got the zip file {url!r}; zip caches are "
                "read-only: write to a directory and `actstore copy` it to a .zip"
            )
        store = ZipStore(url, mode="r")
        store._sync_open()  # opens the zip file now (FileNotFoundError here, not on first read)
        return store
    if is_local(url):
        if storage_options:
            raise InvalidArgumentError(
                f"expected no storage_options for the local path {url!r}, got {storage_options!r}"
            )
        return LocalStore(url, read_only=read_only)
    return FsspecStore.from_url(url, storage_options=storage_options, read_only=read_only)


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Serialise prompt-set creation between processes sharing a local cache.

    Takes an advisory ``flock`` on the cache directory itself (no extra files that zarr would
    warn about; the root ``zarr.json`` is replaced whenever metadata is consolidated, so a lock
    on it would not exclude anyone). Object stores have no such lock: there, creation re-reads
    what was stored and refuses a mismatch, which catches all but a near-simultaneous race
    between different specs.
    """
    root = Path(url) if is_local(url) and not is_zip(url) else None
    if root is None or not (root / "zarr.json").exists():
        yield
        return
    import fcntl

    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
