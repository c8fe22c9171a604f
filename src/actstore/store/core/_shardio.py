"""Fast shard writes: a thread pool encodes a shard's inner chunks, the shard file is plain Zarr v3.

zarr-python 3.1 encodes a shard's inner chunks one after another on its event loop (about 0.4x
one core's zstd speed, docs/write-path.md). Here every inner chunk is an independent task
(gather the chunk, compress it, append its crc32c) on a pool of :func:`write_threads` threads;
numcodecs' zstd and numpy's copies release the GIL, so the encode scales with cores. The pieces
make one object in the ``sharding_indexed`` format: the encoded chunks, layer-major (so one
layer of a shard is one contiguous byte range), then the index (``(chunks..., 2)`` little-endian
uint64 offset/length pairs, ``2**64 - 1`` for a chunk outside the array) with its crc32c. The
writer stores it with one ``store.set`` of the zarr store (so a local directory gets zarr's
``.partial``-then-rename, an fsspec URL one put).

Used only where it applies: an array whose codecs are exactly ``sharding_indexed(bytes[little],
[zstd], crc32c; index bytes[little], crc32c at the end)``; zarr writes anything else itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Prepare",
    "ShardPlan",
    "encode_pool",
    "set_write_threads",
    "shard_plan",
    "write_threads",
]

_EMPTY = np.uint64(2**64 - 1)
#: ``prepare(region, index)``: see :meth:`ShardPlan.encode_shard`.
Prepare = Callable[[np.ndarray, tuple[slice, ...]], None]
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def write_threads() -> int:
    """Encode threads: ``ACTSTORE_WRITE_THREADS`` if set, else the cores this process may use.

    Raises
    ------
    InvalidArgumentError
        When ``ACTSTORE_WRITE_THREADS`` is set to anything but a whole number >= 1.
    """
    env = os.environ.get("ACTSTORE_WRITE_THREADS", "").strip()
    if env:
        if not (env.isascii() and env.isdigit() and int(env) >= 1):
            from actstore.errors import InvalidArgumentError

            raise InvalidArgumentError(
                f"expected ACTSTORE_WRITE_THREADS to be a whole number >= 1, got {env!r}; set "
                "it to e.g. 4, or unset it to use every core this process may use"
            )
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _forget_pool_in_child() -> None:
    """After ``fork`` the child has none of the pool's threads, but the executor would think it
    has them and queue work forever: the child starts a pool of its own on first use."""
    global _POOL, _POOL_LOCK
    _POOL = None
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def encode_pool() -> ThreadPoolExecutor:
    """The process-wide encode pool (created on first use, :func:`write_threads` threads)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(write_threads(), thread_name_prefix="actstore-encode")
        return _POOL


def set_write_threads(n: int | None) -> None:
    """Use *n* encode threads from now on (``None``: back to :func:`write_threads`)."""
    global _POOL
    from actstore.errors import InvalidArgumentError

    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InvalidArgumentError(f"expected a thread count >= 1 or None, got {n!r}")
    with _POOL_LOCK:
        old, _POOL = _POOL, None
        if n is not None:
            _POOL = ThreadPoolExecutor(n, thread_name_prefix="actstore-encode")
    if old is not None:
        old.shutdown(wait=True)


def _crc32c(data: Any) -> bytes:
    import google_crc32c

    return int(google_crc32c.value(data)).to_bytes(4, "little")


@dataclass(frozen=True)
class ShardPlan:
    """How one activation array's shards are encoded (read from its zarr metadata)."""

    key_prefix: str  # "<array path>/"
    shard_shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    array_shape: tuple[int, ...]
    zstd_level: int | None  # None: no compressor, only the checksum
    chunk_key_sep: str

    def shard_key(self, shard_coords: tuple[int, ...]) -> str:
        """The store key of shard *shard_coords* (zarr's default chunk key encoding)."""
        sep = self.chunk_key_sep
        return self.key_prefix + "c" + sep + sep.join(map(str, shard_coords))

    def encode_shard(
        self,
        shard_coords: tuple[int, ...],
        data: np.ndarray,
        pool: ThreadPoolExecutor | None = None,
        prepare: Prepare | None = None,
        scratch: np.ndarray | None = None,
    ) -> np.ndarray:
        """Encode *data*, the part of shard *shard_coords* inside the array, on the pool.

        Parameters
        ----------
        shard_coords
            The shard's grid coordinates.
        data
            The shard's region clipped to the array's extent (e.g. ``(prompt, layer, token,
            d_model)`` of one block).
        pool
            Encode threads (default :func:`encode_pool`).
        prepare
            ``prepare(region, index)`` is called by each chunk's encode task on the chunk's
            region of *data* (a view; ``index`` its slices into *data*) before compressing it;
            it may modify the region in place, or raise to abandon the shard.
        scratch
            A uint8 buffer to build the shard in when it is large enough (reusing one spares
            the page faults of a fresh allocation; only for stores that copy what they are given).

        Returns
        -------
        numpy.ndarray
            ``(nbytes,)`` uint8: the shard object, ready to store.
        """
        pool = pool or encode_pool()
        grid = tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape))
        origin = tuple(i * s for i, s in zip(shard_coords, self.shard_shape))
        # chunk order in the file: axis 1 (layer) outermost, then the others in C order
        coords_list = sorted(np.ndindex(*grid), key=lambda c: (c[1:2], c))
        futures: list[tuple[tuple[int, ...], Future[tuple[bytes, bytes]]]] = []
        for cc in coords_list:
            lo = [o + c * s for o, c, s in zip(origin, cc, self.chunk_shape)]
            if any(x >= n for x, n in zip(lo, self.array_shape)):
                continue  # wholly outside the array: no entry
            sl = tuple(
                slice(c * s, min((c + 1) * s, d))
                for c, s, d in zip(cc, self.chunk_shape, data.shape)
            )
            futures.append((cc, pool.submit(self._encode_chunk, data, sl, prepare)))
        index = np.full((*grid, 2), _EMPTY, dtype="<u8")
        # compressed chunks are copied into one buffer as they complete (overlapping the
        # encoding of the next ones); zstd never outputs more than n + n/256 + 64 bytes
        raw = int(np.prod(self.chunk_shape)) * data.dtype.itemsize
        bound = len(futures) * (raw + raw // 128 + 1024) + index.nbytes + 4
        if scratch is not None and scratch.dtype == np.uint8 and scratch.size >= bound:
            out = scratch
        else:
            out = np.empty(bound, np.uint8)
        offset = 0
        try:
            for cc, fut in futures:
                body, crc = fut.result()
                n = len(body)
                out[offset : offset + n] = np.frombuffer(body, np.uint8)
                out[offset + n : offset + n + 4] = np.frombuffer(crc, np.uint8)
                del body
                index[cc] = (offset, n + 4)
                offset += n + 4
        except BaseException:
            for _, fut in futures:
                fut.cancel()
            for _, fut in futures:  # none may touch *data* after we return
                if not fut.cancelled():
                    fut.exception()
            raise
        index_bytes = index.tobytes()
        end = offset + len(index_bytes)
        out[offset:end] = np.frombuffer(index_bytes, np.uint8)
        out[end : end + 4] = np.frombuffer(_crc32c(index_bytes), np.uint8)
        return out[: end + 4]

    def _encode_chunk(
        self,
        data: np.ndarray,
        sl: tuple[slice, ...],
        prepare: Prepare | None,
    ) -> tuple[bytes, bytes]:
        """One inner chunk: prepared, padded to the chunk shape, compressed; and its crc32c."""
        region = data[sl]
        if prepare is not None:
            prepare(region, sl)
        plain = _plain_view(region)
        if region.shape == self.chunk_shape and plain.flags.c_contiguous:
            raw = plain  # already one contiguous block (one prompt per chunk)
        else:
            # gather into this thread's reusable buffer: a fresh 1 MiB allocation per chunk
            # costs page faults comparable to the copy itself
            raw = _gather_buffer(self.chunk_shape, plain.dtype)
            if region.shape != self.chunk_shape:  # an edge chunk: pad with the fill value (0)
                raw[...] = 0
                raw[tuple(slice(0, n) for n in region.shape)] = plain
            else:
                np.copyto(raw, plain)
        if self.zstd_level is None:
            body: Any = raw.tobytes()  # google_crc32c takes bytes only
        else:
            body = _zstd(self.zstd_level).encode(raw)
        return body, _crc32c(body)


def _plain_view(a: np.ndarray) -> np.ndarray:
    """The same bytes as a plain unsigned-integer array (bfloat16 is not a buffer format)."""
    return a.view(np.dtype(f"<u{a.dtype.itemsize}")) if a.dtype.kind not in "iub" else a


_ZSTD: dict[int, Any] = {}
_LOCAL = threading.local()


def _gather_buffer(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """A C-contiguous array of *shape* and *dtype* owned by the calling thread, reused."""
    buf = getattr(_LOCAL, "gather", None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = _LOCAL.gather = np.empty(shape, dtype=dtype)
    return buf


def _zstd(level: int) -> Any:
    codec = _ZSTD.get(level)
    if codec is None:
        from numcodecs import Zstd

        codec = _ZSTD[level] = Zstd(level=level)
    return codec


def shard_plan(array: Any) -> ShardPlan | None:
    """The fast-write plan of zarr *array*, or None when its codecs are not the plain ones this
    module encodes (zarr then writes the array itself)."""
    from zarr.codecs import (
        BytesCodec,
        Crc32cCodec,
        ShardingCodec,
        ShardingCodecIndexLocation,
        ZstdCodec,
    )

    meta = array.metadata
    if getattr(meta, "zarr_format", None) != 3 or len(meta.codecs) != 1:
        return None
    sharding = meta.codecs[0]
    if not isinstance(sharding, ShardingCodec):
        return None
    inner, index = list(sharding.codecs), list(sharding.index_codecs)
    little = ("little", None)

    def plain_bytes(c: Any) -> bool:
        return isinstance(c, BytesCodec) and getattr(c.endian, "value", c.endian) in little

    if (
        sharding.index_location != ShardingCodecIndexLocation.end
        or len(index) != 2
        or not plain_bytes(index[0])
        or not isinstance(index[1], Crc32cCodec)
        or not inner
        or not plain_bytes(inner[0])
        or not isinstance(inner[-1], Crc32cCodec)
    ):
        return None
    middle = inner[1:-1]
    level: int | None = None
    if len(middle) == 1 and isinstance(middle[0], ZstdCodec) and not middle[0].checksum:
        level = int(middle[0].level)
    elif middle:
        return None
    encoding = meta.chunk_key_encoding
    sep = getattr(encoding, "separator", "/")
    if getattr(encoding, "name", "default") != "default":
        return None
    if meta.data_type.to_native_dtype().byteorder == ">":
        return None
    return ShardPlan(
        key_prefix=f"{array.path}/" if array.path else "",
        shard_shape=tuple(meta.chunk_grid.chunk_shape),
        chunk_shape=tuple(sharding.chunk_shape),
        array_shape=tuple(meta.shape),
        zstd_level=level,
        chunk_key_sep=sep,
    )
