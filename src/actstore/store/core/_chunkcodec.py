"""Inner-chunk bytes without fresh memory: zstd into a reused slot, crc32c in place, and the
shard file written from those slots (zarr ``LocalStore``'s ``.partial``-then-rename).

Every fresh buffer costs a page fault per 4 KiB on first touch, which on a VM is about as much
CPU as compressing the page: numcodecs' ``Zstd.encode`` allocates a new compression context and
a new output object per call, so half of its CPU time per GB is the kernel's (docs/write-path.md).
Here each encode thread keeps one zstd context and compresses straight into its chunk's slot of
a shard buffer that the writer reuses from block to block, so after the first block the encode
touches no new memory. The context comes from the zstd library numcodecs already loads (its
extension module exports zstd's C API; else the system's ``libzstd``), called through
:mod:`ctypes`, which releases the GIL during the call. The bytes are zstd's one-shot
``ZSTD_compressCCtx`` output at the level, which is what numcodecs' ``Zstd(level).encode``
returns (tests/store/test_write_path.py compares them). Without a loadable library the encode
falls back to numcodecs plus one copy into the slot.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["compress_into", "crc32c_of", "write_file", "zstd_bound"]


class _Zstd:
    """zstd's one-shot C API through ctypes (contexts kept per thread)."""

    def __init__(self, lib: Any) -> None:
        lib.ZSTD_createCCtx.restype = ctypes.c_void_p
        lib.ZSTD_createCCtx.argtypes = []
        lib.ZSTD_freeCCtx.restype = ctypes.c_size_t
        lib.ZSTD_freeCCtx.argtypes = [ctypes.c_void_p]
        lib.ZSTD_compressCCtx.restype = ctypes.c_size_t
        lib.ZSTD_compressCCtx.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
        ]
        lib.ZSTD_compressBound.restype = ctypes.c_size_t
        lib.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
        lib.ZSTD_isError.restype = ctypes.c_uint
        lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
        lib.ZSTD_getErrorName.restype = ctypes.c_char_p
        lib.ZSTD_getErrorName.argtypes = [ctypes.c_size_t]
        self.lib = lib
        self._local = threading.local()

    def cctx(self) -> int:
        holder = getattr(self._local, "cctx", None)
        if holder is None:
            holder = self._local.cctx = _CCtx(self.lib)
        return holder.ptr

    def compress(self, dst: np.ndarray, src: np.ndarray, level: int) -> int:
        n = self.lib.ZSTD_compressCCtx(
            self.cctx(), dst.ctypes.data, dst.nbytes, src.ctypes.data, src.nbytes, level
        )
        if self.lib.ZSTD_isError(n):
            name = self.lib.ZSTD_getErrorName(n).decode(errors="replace")
            raise RuntimeError(f"zstd compression failed: {name}")
        return int(n)


class _CCtx:
    """One thread's compression context, freed with the thread's ``threading.local``."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib
        self.ptr = lib.ZSTD_createCCtx()
        if not self.ptr:
            raise MemoryError("ZSTD_createCCtx returned NULL")

    def __del__(self) -> None:
        if self.ptr:
            self.lib.ZSTD_freeCCtx(self.ptr)
            self.ptr = None


_NATIVE: _Zstd | bool | None = False  # False: not looked up yet; None: not available
_NATIVE_LOCK = threading.Lock()


def _native() -> _Zstd | None:
    """The ctypes zstd, or None when no library with zstd's API can be loaded."""
    global _NATIVE
    if _NATIVE is False:
        with _NATIVE_LOCK:
            if _NATIVE is False:
                _NATIVE = _load_native()
    return _NATIVE  # type: ignore[return-value]


def _load_native() -> _Zstd | None:
    candidates: list[str] = []
    try:
        import numcodecs.zstd as ncz

        candidates.append(ncz.__file__)
    except ImportError:  # pragma: no cover - numcodecs is a dependency
        pass
    system = ctypes.util.find_library("zstd")
    if system:
        candidates.append(system)
    for name in candidates:
        try:
            return _Zstd(ctypes.CDLL(name))
        except (OSError, AttributeError):  # not loadable, or without zstd's symbols
            continue
    return None


def zstd_bound(nbytes: int) -> int:
    """zstd's worst-case compressed size of *nbytes* bytes (``ZSTD_COMPRESSBOUND``)."""
    margin = (128 * 1024 - nbytes) >> 11 if nbytes < 128 * 1024 else 0
    return nbytes + (nbytes >> 8) + margin


def compress_into(dst: np.ndarray, src: np.ndarray, level: int) -> int:
    """Compress C-contiguous *src* at zstd *level* into uint8 *dst* (at least
    :func:`zstd_bound` bytes); returns the compressed size."""
    native = _native()
    if native is not None:
        return native.compress(dst, src, level)
    from numcodecs import Zstd

    body = Zstd(level=level).encode(src)
    dst[: len(body)] = np.frombuffer(body, np.uint8)
    return len(body)


def crc32c_of(data: Any) -> int:
    """CRC-32C of a buffer (any contiguous buffer; the GIL is released for large ones)."""
    import crc32c

    return int(crc32c.crc32c(data))


def _iov_max() -> int:
    try:
        return max(16, min(1024, int(os.sysconf("SC_IOV_MAX"))))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 16


def write_file(root: Path, key: str, pieces: Sequence[Any]) -> int:
    """Write *pieces* (buffers, in order) as the object *key* of the local store at *root*, the
    way zarr's ``LocalStore`` puts one: into ``<key>.<uuid hex>.partial`` (readers skip those, the
    next write of the block removes leftovers), renamed over ``root / key`` only once it is
    whole, the temporary file removed on any error. Like zarr, no fsync. Returns the bytes
    written. (The one place a local shard file is written: fault-injection tests hook it.)"""
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.partial")  # zarr's own temp-name pattern
    total = 0
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o666
        )
        try:
            views = [memoryview(p).cast("B") for p in pieces]
            if hasattr(os, "writev"):
                total = _writev_all(fd, views)
            else:  # pragma: no cover - not POSIX
                for v in views:
                    while v:
                        n = os.write(fd, v)
                        total += n
                        v = v[n:]
        finally:
            os.close(fd)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return total


def _writev_all(fd: int, views: list[memoryview]) -> int:
    """``os.writev`` until every byte of *views* is written (short writes resumed)."""
    step, total, i = _iov_max(), 0, 0
    while i < len(views):
        batch = views[i : i + step]
        n = os.writev(fd, batch)
        if n == 0 and any(len(v) for v in batch):
            raise OSError(f"writev wrote nothing of {sum(map(len, batch))} bytes")
        total += n
        for v in batch:  # skip what was written whole; resume inside a partly written one
            if n >= len(v):
                n -= len(v)
                i += 1
            else:
                views[i] = v[n:]
                break
    return total
