"""Turn a path or fsspec URL into a zarr store (local directory, ``.zip`` file, any fsspec URL)."""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zarr.abc.store import Store
from zarr.storage import FsspecStore, LocalStore

from actstore.errors import InvalidArgumentError, NotACacheError, ReadOnlyError
from actstore.store.format._zarr import OpenedZipStore

__all__ = [
    "creation_lock",
    "is_local",
    "is_zip",
    "local_path",
    "make_store",
    "normalize_url",
    "zip_location",
]


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


def zip_location(url: str) -> tuple[str, str] | None:
    """``(zip file, folder inside it)`` for a ``.zip`` path or an fsspec zip URL, else ``None``.

    Accepted: ``cache.zip``, ``zip::file:///data/cache.zip``, ``zip::s3://bucket/cache.zip`` and
    ``zip://FOLDER::file:///data/cache.zip`` (the cache is the zip's ``FOLDER``).
    """
    if is_zip(url):
        return url, ""
    if url.startswith("zip::"):
        return normalize_url(url[len("zip::") :]), ""
    if url.startswith("zip://") and "::" in url:
        inner, rest = url[len("zip://") :].split("::", 1)
        return normalize_url(rest), inner.strip("/")
    return None


def local_path(url: str) -> Path | None:
    return Path(url) if is_local(url) else None


def make_store(
    url: str, *, read_only: bool, storage_options: dict[str, Any] | None = None
) -> Store:
    """Open the zarr store behind *url* (does not check that a cache is there)."""
    location = zip_location(url)
    if location is not None:
        if not read_only:
            raise ReadOnlyError(
                f"expected a writable cache location, got the zip file {url!r}; zip caches are "
                "read-only: write to a directory and `actstore copy` it to a .zip"
            )
        store = ZipCacheStore(*location, storage_options=storage_options)
        store.open_now()  # opens the zip file now (FileNotFoundError here, not on first read)
        return store
    if is_local(url):
        if storage_options:
            raise InvalidArgumentError(
                f"expected no storage_options for the local path {url!r}, got {storage_options!r}"
            )
        return LocalStore(url, read_only=read_only)
    try:
        return FsspecStore.from_url(url, storage_options=storage_options, read_only=read_only)
    except ImportError as exc:  # fsspec: "Install s3fs to access S3"
        from actstore._extras import protocol_extra

        raise protocol_extra(url.split("://", 1)[0].split("::")[-1], url, exc) from exc


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
    with directory_lock(root):
        yield


@contextlib.contextmanager
def directory_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive advisory ``flock`` on the existing local directory *path*.

    flock locks belong to an open file description: two nested locks of one process on the
    same directory exclude each other, so never nest them.
    """
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class ZipCacheStore(OpenedZipStore):
    """A read-only zip cache: a local zip file or any fsspec URL of one.

    The cache may sit at the zip's root or in one folder of it (``zip -r c.zip c.zarr`` puts every
    entry under ``c.zarr/``): *folder*, or the one top-level folder holding a ``zarr.json`` when
    the root has none, is presented as the root. Directory entries are left out (zarr lists keys,
    never folders). zarr's own ``ZipStore`` opens local paths only; fsspec's zip filesystem lists
    folders of a zip without directory entries wrongly, so xarray found no arrays through it.
    """

    def __init__(
        self, zip_url: str, folder: str = "", *, storage_options: dict[str, Any] | None = None
    ) -> None:
        super().__init__(zip_url if is_local(zip_url) else Path(zip_url).name, mode="r")
        self.zip_url = zip_url
        self.folder = folder
        self._storage_options = dict(storage_options or {})
        if is_local(zip_url) and storage_options:
            raise InvalidArgumentError(
                f"expected no storage_options for the local zip {zip_url!r}, got "
                f"{storage_options!r}"
            )

    def open_zipfile(self) -> zipfile.ZipFile:
        if is_local(self.zip_url):
            source: Any = self.zip_url
        else:
            import fsspec

            source = fsspec.open(self.zip_url, mode="rb", **self._storage_options).open()
        try:
            zf = zipfile.ZipFile(source, mode="r")
        except zipfile.BadZipFile as exc:
            raise NotACacheError(
                f"expected a zip file at {self.zip_url!r}, got one zipfile cannot read ({exc}); "
                "copy the cache again (`actstore copy CACHE NEW.zip`)"
            ) from exc
        folder = self.folder or _single_cache_folder(zf)
        infos = [i for i in zf.filelist if not i.is_dir()]
        if folder:
            infos = [i for i in infos if i.filename.startswith(f"{folder}/")]
            for info in infos:
                info.filename = info.filename[len(folder) + 1 :]
        zf.filelist = infos
        zf.NameToInfo = {i.filename: i for i in infos}
        return zf

    async def getsize(self, key: str) -> int:
        """From the zip's directory: no read, so a damaged entry is found by the read that
        checks it (zipfile's CRC), where ``verify`` names it, not here."""
        try:
            return self.entry_size(key)
        except KeyError:
            # zarr's store protocol: a missing key is FileNotFoundError; the KeyError of the
            # zip directory lookup says nothing more, so it is not chained
            raise FileNotFoundError(key) from None

    def __str__(self) -> str:
        return f"zip://{self.folder}::{self.zip_url}" if self.folder else f"zip::{self.zip_url}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZipCacheStore) and (self.zip_url, self.folder) == (
            other.zip_url,
            other.folder,
        )

    __hash__ = None  # type: ignore[assignment]


def _single_cache_folder(zf: zipfile.ZipFile) -> str:
    """The one top-level folder holding ``zarr.json`` of a zip without a root ``zarr.json``."""
    names = zf.namelist()
    if "zarr.json" in names:
        return ""
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    if len(tops) == 1 and f"{next(iter(tops))}/zarr.json" in names:
        return next(iter(tops))
    return ""
