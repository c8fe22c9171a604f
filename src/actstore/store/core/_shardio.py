"""Fast shard writes: a thread pool encodes a shard's inner chunks, the shard file is plain Zarr v3.

zarr-python 3.1 encodes a shard's inner chunks one after another on its event loop (about 0.4x
one core's zstd speed, docs/write-path.md). Here every inner chunk is an independent task
(compress the chunk, append its crc32c) on a pool of :func:`write_threads` threads; zstd (through
:mod:`actstore.store.core._chunkcodec`) releases the GIL, so the encode scales with cores. A
chunk whose bytes are one contiguous range of the block (a layer-major block buffer, as
``extract`` fills) is compressed where it lies; any other is gathered first. Each chunk is
compressed into its own slot of one shard buffer the writer reuses, so no chunk allocates. The
pieces make one object in the ``sharding_indexed`` format: the encoded chunks, layer-major (so
one layer of a shard is one contiguous byte range), then the index (``(chunks..., 2)``
little-endian uint64 offset/length pairs, ``2**64 - 1`` for a chunk outside the array) with its
crc32c. The writer writes the pieces straight to the shard file on a local directory (zarr's
``.partial``-then-rename) and stores them joined with one ``store.set`` anywhere else.

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

from actstore.store.core._chunkcodec import compress_into, crc32c_of, zstd_bound

__all__ = [
    "EncodedShard",
    "Prepare",
    "ShardBuffers",
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

    def chunk_slot(self, itemsize: int) -> int:
        """Bytes reserved per inner chunk in a shard buffer: the compressed chunk can never be
        longer (zstd's bound) and its crc32c follows it in the same slot."""
        raw = int(np.prod(self.chunk_shape)) * itemsize
        return (raw if self.zstd_level is None else zstd_bound(raw)) + 4

    def buffer_size(self, itemsize: int) -> int:
        """Bytes of the uint8 buffer :meth:`encode_shard` builds a whole shard in."""
        n_chunks = int(np.prod([s // c for s, c in zip(self.shard_shape, self.chunk_shape)]))
        return n_chunks * self.chunk_slot(itemsize)

    def encode_shard(
        self,
        shard_coords: tuple[int, ...],
        data: np.ndarray,
        pool: ThreadPoolExecutor | None = None,
        prepare: Prepare | None = None,
        scratch: np.ndarray | None = None,
    ) -> EncodedShard:
        """Encode *data*, the part of shard *shard_coords* inside the array, on the pool.

        Parameters
        ----------
        shard_coords
            The shard's grid coordinates.
        data
            The shard's region clipped to the array's extent (e.g. ``(prompt, layer, token,
            d_model)`` of one block). Any strides: an inner chunk whose region is one
            C-contiguous range (e.g. a layer-major buffer's transposed view) is compressed in
            place, any other is gathered first.
        pool
            Encode threads (default :func:`encode_pool`).
        prepare
            ``prepare(region, index)`` is called by each chunk's encode task on the chunk's
            region of *data* (a view; ``index`` its slices into *data*) before compressing it;
            it may modify the region in place, or raise to abandon the shard.
        scratch
            A uint8 buffer of at least :meth:`buffer_size` bytes to build the shard in (reusing
            one from block to block spares the page faults of a fresh allocation); a new one
            when None or too small.

        Returns
        -------
        EncodedShard
            The shard object's pieces in file order, each valid until the buffer is reused
            (and, for ``codec none``, until *data* changes).
        """
        pool = pool or encode_pool()
        grid = tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape))
        origin = tuple(i * s for i, s in zip(shard_coords, self.shard_shape))
        slot = self.chunk_slot(data.dtype.itemsize)
        size = self.buffer_size(data.dtype.itemsize)
        if scratch is not None and scratch.dtype == np.uint8 and scratch.size >= size:
            buf = scratch
        else:
            buf = np.empty(size, np.uint8)
        # chunk order in the file: axis 1 (layer) outermost, then the others in C order
        coords_list = sorted(np.ndindex(*grid), key=lambda c: (c[1:2], c))
        futures: list[tuple[tuple[int, ...], Future[list[np.ndarray]]]] = []
        for cc in coords_list:
            lo = [o + c * s for o, c, s in zip(origin, cc, self.chunk_shape)]
            if any(x >= n for x, n in zip(lo, self.array_shape)):
                continue  # wholly outside the array: no entry
            sl = tuple(
                slice(c * s, min((c + 1) * s, d))
                for c, s, d in zip(cc, self.chunk_shape, data.shape)
            )
            dst = buf[len(futures) * slot : (len(futures) + 1) * slot]
            futures.append((cc, pool.submit(self._encode_chunk, data, sl, prepare, dst)))
        index = np.full((*grid, 2), _EMPTY, dtype="<u8")
        pieces: list[np.ndarray] = []
        offset = 0
        try:
            for cc, fut in futures:
                parts = fut.result()
                n = sum(p.nbytes for p in parts)
                pieces += parts
                index[cc] = (offset, n)
                offset += n
        except BaseException:
            for _, fut in futures:
                fut.cancel()
            for _, fut in futures:  # none may touch *data* or *buf* after we return
                if not fut.cancelled():
                    fut.exception()
            raise
        index_bytes = index.tobytes()
        tail = np.empty(len(index_bytes) + 4, np.uint8)
        tail[:-4] = np.frombuffer(index_bytes, np.uint8)
        tail[-4:] = np.frombuffer(_crc_bytes(index_bytes), np.uint8)
        pieces.append(tail)
        return EncodedShard(pieces, offset + tail.nbytes, buf)

    def _encode_chunk(
        self,
        data: np.ndarray,
        sl: tuple[slice, ...],
        prepare: Prepare | None,
        dst: np.ndarray,
    ) -> list[np.ndarray]:
        """One inner chunk: prepared, padded to the chunk shape, compressed into *dst* (its
        slot) followed by its crc32c; returns the chunk's bytes in the file as pieces."""
        region = data[sl]
        if prepare is not None:
            prepare(region, sl)
        plain = _plain_view(region)
        if region.shape == self.chunk_shape and plain.flags.c_contiguous:
            raw = plain  # one contiguous range already (e.g. a layer-major block)
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
            body = raw.reshape(-1).view(np.uint8)
            if raw is plain:  # stored as it is: no copy, only the checksum in the slot
                dst[:4] = np.frombuffer(_crc_bytes(body), np.uint8)
                return [body, dst[:4]]
            n = body.nbytes
            dst[:n] = body
        else:
            n = compress_into(dst, raw, self.zstd_level)
        dst[n : n + 4] = np.frombuffer(_crc_bytes(dst[:n]), np.uint8)
        return [dst[: n + 4]]


@dataclass(frozen=True)
class EncodedShard:
    """One encoded shard object: *pieces* (uint8 arrays) concatenated in order, *nbytes* long,
    built in *buffer* (which the writer may reuse once the pieces are stored)."""

    pieces: list[np.ndarray]
    nbytes: int
    buffer: np.ndarray

    def joined(self) -> np.ndarray:
        """``(nbytes,)`` uint8: the object as one new contiguous buffer (for a store's ``set``)."""
        out = np.empty(self.nbytes, np.uint8)
        offset = 0
        for p in self.pieces:
            out[offset : offset + p.nbytes] = p
            offset += p.nbytes
        return out


class ShardBuffers:
    """Shard buffers reused from block to block, per array name: taken by one block write and
    given back after its file is written, so concurrent block writes never share one (list
    ``pop``/``append`` are atomic). Keeps at most *keep* per name (one per block in flight)."""

    def __init__(self, keep: int = 4) -> None:
        self._free: dict[str, list[np.ndarray]] = {}
        self._keep = keep

    def take(self, name: str) -> np.ndarray | None:
        try:
            return self._free.setdefault(name, []).pop()
        except IndexError:
            return None

    def give(self, name: str, buf: np.ndarray) -> None:
        free = self._free.setdefault(name, [])
        if len(free) < self._keep:
            free.append(buf)


def _crc_bytes(data: Any) -> bytes:
    return crc32c_of(data).to_bytes(4, "little")


def _plain_view(a: np.ndarray) -> np.ndarray:
    """The same bytes as a plain unsigned-integer array (bfloat16 is not a buffer format)."""
    return a.view(np.dtype(f"<u{a.dtype.itemsize}")) if a.dtype.kind not in "iub" else a


_LOCAL = threading.local()


def _gather_buffer(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """A C-contiguous array of *shape* and *dtype* owned by the calling thread, reused."""
    buf = getattr(_LOCAL, "gather", None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = _LOCAL.gather = np.empty(shape, dtype=dtype)
    return buf


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
