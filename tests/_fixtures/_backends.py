"""Storage locations for the cache contract suite (``tests/store/test_contract.py``).

A :class:`Backend` hands out fresh cache locations of one kind (a local directory, fsspec's
``memory://``, the loopback S3 server, a zip file) and reads or damages the stored objects with
fsspec or :mod:`zipfile` directly, never through actstore: the contract tests compare what the
public API wrote with this independent view of the storage.
"""

from __future__ import annotations

import os
import struct
import uuid
import zipfile
from pathlib import Path
from typing import Any

from tests._fixtures.store import Synthetic, write_synthetic


class Backend:
    """Fresh cache locations of one kind, and raw access to their stored objects.

    Attributes
    ----------
    name : str
        Shown in test ids and messages.
    writable : bool
        False where every write is refused (zip caches are read-only).
    storage_options : dict or None
        What ``create_cache``/``open_cache``/... need to reach the location.
    """

    name = "?"
    writable = True
    storage_options: dict[str, Any] | None = None

    def new_url(self, tag: str) -> str:
        """A location where nothing exists yet."""
        raise NotImplementedError

    def build(self, syn: Synthetic, blocks: list[int] | None = None) -> str:
        """A cache holding *syn* as prompt set ``arith`` (only *blocks*, default all); its URL."""
        url = self.new_url("built")
        write_synthetic(url, syn, blocks=blocks, storage_options=self.storage_options)
        return url

    def _fs(self, url: str) -> tuple[Any, str]:
        """This backend's own fsspec filesystem (made once: an S3 client is slow to make) and
        *url*'s path on it, with no listing cached from before."""
        import fsspec.core

        fs, path = fsspec.core.url_to_fs(url, **(self.storage_options or {}))
        fs = self.__dict__.setdefault("_filesystem", fs)
        fs.invalidate_cache()
        return fs, path.rstrip("/")

    def raw(self, url: str) -> dict[str, bytes]:
        """Every stored object of the cache at *url*: ``key relative to the root -> bytes``."""
        fs, root = self._fs(url)
        return {f[len(root) + 1 :]: fs.cat_file(f) for f in fs.find(root)}

    def put(self, url: str, key: str, data: bytes) -> None:
        """Store *data* as object *key* (what a write killed half-way may leave)."""
        fs, root = self._fs(url)
        fs.makedirs(f"{root}/{key}".rsplit("/", 1)[0], exist_ok=True)  # (local directories)
        fs.pipe_file(f"{root}/{key}", data)

    def delete(self, url: str, key: str) -> None:
        """Remove the stored object *key*."""
        fs, root = self._fs(url)
        fs.rm_file(f"{root}/{key}")

    def damage(self, url: str, key: str) -> None:
        """Flip one byte in the middle of the stored object *key* (its size is unchanged)."""
        fs, root = self._fs(url)
        data = bytearray(fs.cat_file(f"{root}/{key}"))
        data[len(data) // 2] ^= 0x01
        fs.pipe_file(f"{root}/{key}", bytes(data))

    def cleanup(self) -> None:
        """Remove what this backend created outside pytest's temporary directories."""


class DirectoryBackend(Backend):
    """Local directories under pytest's ``tmp_path`` (URLs are plain paths)."""

    name = "directory"

    def __init__(self, root: Path) -> None:
        self.root = root

    def new_url(self, tag: str) -> str:
        return str(self.root / f"{tag}-{uuid.uuid4().hex[:8]}.zarr")


class MemoryBackend(Backend):
    """fsspec's process-wide memory filesystem; everything under one prefix, removed after."""

    name = "memory"

    def __init__(self) -> None:
        self.prefix = f"memory://actstore-contract-{uuid.uuid4().hex}"

    def new_url(self, tag: str) -> str:
        return f"{self.prefix}/{tag}-{uuid.uuid4().hex[:8]}.zarr"

    def cleanup(self) -> None:
        import fsspec

        fs = fsspec.filesystem("memory")
        root = self.prefix.removeprefix("memory://")
        if fs.exists(f"/{root}"):
            fs.rm(f"/{root}", recursive=True)


class S3Backend(Backend):
    """The loopback S3 server of ``tests/_fixtures/s3.py`` (bucket ``caches``)."""

    name = "s3"

    def __init__(self, server: Any) -> None:
        self.storage_options = server.storage_options
        self.prefix = f"s3://caches/contract-{uuid.uuid4().hex[:12]}"

    def new_url(self, tag: str) -> str:
        return f"{self.prefix}/{tag}-{uuid.uuid4().hex[:8]}.zarr"


class ZipBackend(Backend):
    """Read-only zip caches, made as users share them: ``cd parent && zip -r c.zip c.zarr``.

    :meth:`build` writes the cache into a directory with the public writer API and zips that
    directory with :mod:`zipfile` (directory entries too, every entry under ``c.zarr/``), the
    layout ``zip -r`` gives; actstore finds the cache in that top-level folder.
    """

    name = "zip"
    writable = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def new_url(self, tag: str) -> str:
        return str(self.root / f"{tag}-{uuid.uuid4().hex[:8]}.zip")

    def build(self, syn: Synthetic, blocks: list[int] | None = None) -> str:
        parent = self.root / f"src-{uuid.uuid4().hex[:8]}"
        write_synthetic(parent / "c.zarr", syn, blocks=blocks)
        url = self.new_url("built")
        with zipfile.ZipFile(url, "w") as zf:
            for dirpath, _dirs, files in os.walk(parent / "c.zarr"):
                rel = Path(dirpath).relative_to(parent).as_posix()
                zf.write(dirpath, rel + "/")
                for f in sorted(files):
                    zf.write(Path(dirpath) / f, f"{rel}/{f}")
        return url

    def put(self, url: str, key: str, data: bytes) -> None:
        """Add entry *key* to the zip file *url* (made when missing)."""
        with zipfile.ZipFile(url, "a") as zf:
            zf.writestr(key, data)

    @staticmethod
    def _prefix(names: list[str]) -> str:
        """``""`` for a zip whose root is the cache, else its one top-level folder + ``/``."""
        if "zarr.json" in names or any("/" not in n for n in names):
            return ""
        tops = {n.split("/", 1)[0] for n in names}
        assert len(tops) == 1, tops  # a test helper's own precondition, not validation
        return f"{tops.pop()}/"

    def raw(self, url: str) -> dict[str, bytes]:
        with zipfile.ZipFile(url) as zf:
            files = [i.filename for i in zf.infolist() if not i.is_dir()]
            prefix = self._prefix(files)
            return {n[len(prefix) :]: zf.read(n) for n in files}

    def delete(self, url: str, key: str) -> None:
        """Rewrite the zip file *url* without entry *key* (zipfile cannot delete in place)."""
        raw = Path(url).read_bytes()  # entries copied as stored: a damaged one keeps its bytes
        with zipfile.ZipFile(url) as zf:
            prefix = self._prefix([i.filename for i in zf.infolist() if not i.is_dir()])
            entries = [
                (i, raw[slice(*_data_span(raw, i))])
                for i in zf.infolist()
                if i.filename != prefix + key
            ]
        with zipfile.ZipFile(url, "w") as zf:
            for info, data in entries:
                zf.writestr(info, data)

    def damage(self, url: str, key: str) -> None:
        """Flip one byte of the entry's stored data in place (its CRC in the zip stays the old)."""
        with zipfile.ZipFile(url) as zf:
            prefix = self._prefix([i.filename for i in zf.infolist() if not i.is_dir()])
            info = zf.getinfo(prefix + key)
        data = bytearray(Path(url).read_bytes())
        start, stop = _data_span(data, info)
        data[(start + stop) // 2] ^= 0x01
        Path(url).write_bytes(bytes(data))


def _data_span(data: bytes | bytearray, info: zipfile.ZipInfo) -> tuple[int, int]:
    """``[start, stop)`` of a stored (uncompressed) entry's bytes in the zip file *data*."""
    assert info.compress_type == zipfile.ZIP_STORED
    # local file header: 30 fixed bytes, then the name and the (local) extra field
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len
    return start, start + info.compress_size
