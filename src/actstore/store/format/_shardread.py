"""A minimal reader of the Zarr v3 arrays actstore writes, for a local directory, without zarr.

The probe-fit fast path (``actstore.analysis._light``) reads a few small arrays (labels,
``n_tokens``, materialised positions): importing zarr, xarray and dask for them costs more than
the fit. This module reads exactly the formats actstore's writers produce and nothing else:

* chunk grid ``regular``, chunk keys ``default`` with separator ``/`` (or ``.``);
* codecs ``bytes`` (little endian) [+ ``zstd``] + ``crc32c``, optionally inside
  ``sharding_indexed`` (index codecs ``bytes`` + ``crc32c``, index at the start or the end);
* data types ``bool``, ``(u)int8-64``, ``float16/32/64`` and actstore's ``bfloat16``.

Anything else raises :class:`Unsupported`: the caller then reads through zarr, whose path does the
full safety scan and error reporting. Untrusted bytes get the same checks zarr gives them, and
more: every chunk's and every shard index's crc32c is verified, a zstd frame must declare its
decoded size and that size must be the chunk's (no decompression bomb), a shard index must point
inside its shard. A mismatch raises :class:`~actstore.errors.CorruptCacheError` naming the chunk.
Tested bit for bit against zarr-python (``tests/analysis/test_light_read.py``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from actstore.errors import CorruptCacheError
from actstore.store.format._safety_limits import (
    MAX_CHUNK_BYTES,
    MAX_CHUNKS_PER_SHARD,
    MAX_JSON_DEPTH,
    MAX_METADATA_BYTES,
    MAX_NDIM,
)

__all__ = ["MAX_READ_BYTES", "Unsupported", "check_array", "read_array", "read_json"]

#: The most one call reads into memory; larger reads are the general (streaming) path's.
MAX_READ_BYTES = 1024 * 2**20
_EMPTY = 2**64 - 1  # a shard index entry of an absent inner chunk
_INTS = {f"{p}int{b}" for p in ("", "u") for b in (8, 16, 32, 64)}
_DTYPES = _INTS | {"bool", "float16", "float32", "float64", "bfloat16"}


class Unsupported(Exception):
    """The light reader does not handle this array (read it through zarr instead)."""


def read_json(path: str) -> dict[str, Any]:
    """A ``zarr.json`` document as a dict; :class:`Unsupported` when absent, huge or not JSON."""
    try:
        if os.path.getsize(path) > MAX_METADATA_BYTES:
            raise Unsupported(f"{path}: metadata larger than {MAX_METADATA_BYTES} bytes")
        with open(path, "rb") as fh:
            doc = json.loads(fh.read())
    except (OSError, ValueError, RecursionError) as exc:
        raise Unsupported(f"{path}: {exc}") from exc
    if not _shallow(doc, MAX_JSON_DEPTH):
        raise Unsupported(f"{path}: JSON nested deeper than {MAX_JSON_DEPTH}")
    if not isinstance(doc, dict) or doc.get("zarr_format") != 3:
        raise Unsupported(f"{path}: not Zarr v3 metadata")
    return doc


def _shallow(doc: Any, depth: int) -> bool:
    if depth < 0:
        return False
    if isinstance(doc, dict):
        return all(_shallow(v, depth - 1) for v in doc.values())
    if isinstance(doc, list):
        return all(_shallow(v, depth - 1) for v in doc)
    return True


def _dtype(name: Any) -> np.dtype:
    if name not in _DTYPES:
        raise Unsupported(f"data type {name!r}")
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name).newbyteorder("<")


def _ints(values: Any, n: int, least: int = 1) -> tuple[int, ...]:
    if not isinstance(values, list) or len(values) != n:
        raise Unsupported(f"expected {n} integers, got {values!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= least for v in values):
        raise Unsupported(f"expected integers >= {least}, got {values!r}")
    return tuple(values)


def _chain(codecs: Any) -> bool:
    """Whether ``codecs`` is ``bytes`` (little endian) [+ ``zstd``] + ``crc32c``: the zstd flag."""
    if not isinstance(codecs, list) or not 2 <= len(codecs) <= 3:
        raise Unsupported(f"codecs {codecs!r}")
    names = [c.get("name") if isinstance(c, dict) else None for c in codecs]
    if names not in (["bytes", "crc32c"], ["bytes", "zstd", "crc32c"]):
        raise Unsupported(f"codecs {names}")
    endian = (codecs[0].get("configuration") or {}).get("endian", "little")
    if endian != "little":
        raise Unsupported(f"endian {endian!r}")
    return len(codecs) == 3


def _frame_size(frame: bytes) -> int | None:
    """The decoded size a zstd frame header declares, or ``None`` (not a frame / undeclared)."""
    if len(frame) < 6 or frame[:4] != b"\x28\xb5\x2f\xfd":
        return None
    fhd = frame[4]
    fcs_flag, single = fhd >> 6, (fhd >> 5) & 1
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3]
    size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if size == 0 or len(frame) < pos + size:
        return None
    value = int.from_bytes(frame[pos : pos + size], "little")
    return value + 256 if size == 2 else value


class _Chunk:
    """Decodes one chunk's bytes: crc32c check, zstd (size checked first), then the raw array."""

    def __init__(self, zstd: bool, dtype: np.dtype, shape: tuple[int, ...], where: str) -> None:
        self.zstd, self.dtype, self.shape, self.where = zstd, dtype, shape, where
        self.nbytes = math.prod(shape) * dtype.itemsize

    def damaged(self, key: str, problem: str) -> CorruptCacheError:
        return CorruptCacheError(
            f"expected an intact chunk {key} of {self.where!r}, got {problem}; the cache is "
            f"damaged: run `actstore verify {self.where}` to list every damaged part and "
            f"`actstore repair {self.where}` to fix it (or restore the copy)"
        )

    def decode(self, data: bytes, key: str) -> np.ndarray:
        body = _checked(data, key, self.damaged)
        if self.zstd:
            if _frame_size(body) != self.nbytes:
                raise self.damaged(key, f"a zstd frame that does not declare {self.nbytes} bytes")
            try:
                body = _decompress(body, self.nbytes)
            except Exception as exc:  # any failure of the decoder means damaged bytes
                raise self.damaged(key, f"undecodable zstd data ({exc})") from exc
        if len(body) != self.nbytes:
            raise self.damaged(key, f"{len(body)} bytes where {self.nbytes} were expected")
        return np.frombuffer(body, dtype=self.dtype).reshape(self.shape)


def _decompress(frame: bytes, nbytes: int) -> bytes:
    """One zstd frame (its declared size already checked to be ``nbytes``): with ``zstandard``
    when installed (imports in ~1 ms), else numcodecs' (which imports ``importlib.metadata``)."""
    try:
        import zstandard
    except ImportError:
        from numcodecs.zstd import decompress

        return bytes(decompress(frame))
    return zstandard.ZstdDecompressor().decompress(frame, max_output_size=nbytes)


def _crc32c(data: bytes) -> int:
    """CRC-32C with ``google_crc32c`` (zarr's own dependency; ~1 ms to import), else ``crc32c``
    (which imports ``importlib.metadata`` and ``argparse``: ~25 ms)."""
    try:
        from google_crc32c import value
    except ImportError:
        from crc32c import crc32c as value
    return int(value(data))


def _checked(data: bytes, key: str, damaged: Callable[[str, str], Exception]) -> bytes:
    if len(data) < 4:
        raise damaged(key, f"{len(data)} bytes, too short for its checksum")
    if _crc32c(data[:-4]) != int.from_bytes(data[-4:], "little"):
        raise damaged(key, "a crc32c checksum that does not match its bytes")
    return data[:-4]


def _fill(meta: dict[str, Any], dtype: np.dtype) -> Any:
    fill = meta.get("fill_value", 0)
    if isinstance(fill, bool | int | float):
        return fill
    if fill in ("NaN", "Infinity", "-Infinity") and (dtype.kind == "f" or dtype.name == "bfloat16"):
        return float(fill.replace("Infinity", "inf"))
    raise Unsupported(f"fill value {fill!r}")


@dataclass(frozen=True)
class _Layout:
    shape: tuple[int, ...]
    dtype: np.dtype
    outer: tuple[int, ...]  # chunk (shard) shape
    inner: tuple[int, ...]  # inner chunk shape (= outer when not sharded)
    chunk: _Chunk
    sep: str
    sharded: bool
    index_at_end: bool


def check_array(meta: dict[str, Any], where: str = "") -> _Layout:
    """The layout of an array's ``zarr.json`` (``meta``), checked: :class:`Unsupported` unless
    this reader handles every part of it (call before relying on :func:`read_array`)."""
    try:
        return _layout(meta, where)
    except (AttributeError, TypeError, KeyError, ValueError, OverflowError) as exc:
        raise Unsupported(f"metadata {type(exc).__name__}: {exc}") from exc


def _layout(meta: dict[str, Any], where: str) -> _Layout:
    if meta.get("node_type") != "array" or meta.get("storage_transformers") not in (None, []):
        raise Unsupported("not a plain array")
    shape_raw = meta.get("shape")
    if not isinstance(shape_raw, list):
        raise Unsupported(f"shape {shape_raw!r}")
    ndim = len(shape_raw)
    shape = _ints(shape_raw, ndim, least=0)
    dtype = _dtype(meta.get("data_type"))
    grid, keys = meta.get("chunk_grid") or {}, meta.get("chunk_key_encoding") or {}
    if grid.get("name") != "regular" or keys.get("name") != "default":
        raise Unsupported("chunk grid or key encoding")
    sep = (keys.get("configuration") or {}).get("separator", "/")
    if sep not in ("/", "."):
        raise Unsupported(f"separator {sep!r}")
    outer = _ints((grid.get("configuration") or {}).get("chunk_shape"), ndim)
    codecs = meta.get("codecs")
    inner, index_at_end, sharded = outer, True, False
    if (
        isinstance(codecs, list)
        and len(codecs) == 1
        and isinstance(codecs[0], dict)
        and codecs[0].get("name") == "sharding_indexed"
    ):
        conf = codecs[0].get("configuration") or {}
        inner = _ints(conf.get("chunk_shape"), ndim)
        if any(o % i for o, i in zip(outer, inner, strict=True)):
            raise Unsupported("inner chunks that do not tile the shard")
        if _chain(conf.get("index_codecs")) or conf.get("index_location", "end") not in (
            "start",
            "end",
        ):
            raise Unsupported("shard index codecs")
        index_at_end = conf.get("index_location", "end") == "end"
        codecs, sharded = conf.get("codecs"), True
    chunk = _Chunk(_chain(codecs), dtype, inner, where)
    if chunk.nbytes > MAX_CHUNK_BYTES or ndim > MAX_NDIM or not ndim:
        raise Unsupported(f"chunks of {chunk.nbytes} bytes, {ndim} dimensions")
    _fill(meta, dtype)
    return _Layout(
        shape=shape,
        dtype=dtype,
        outer=outer,
        inner=inner,
        chunk=chunk,
        sep=sep,
        sharded=sharded,
        index_at_end=index_at_end,
    )


def read_array(
    path: str,
    meta: dict[str, Any],
    *,
    where: str,
    keep: Callable[[tuple[int, ...]], bool] | None = None,
    missing_ok: bool = True,
    rows: tuple[int, int] | None = None,
) -> np.ndarray:
    """The array stored in directory ``path`` (its ``zarr.json`` already read as ``meta``).

    Parameters
    ----------
    path : str
        The array's directory (chunk keys ``c/i/j/...`` below it).
    meta : dict
        Its ``zarr.json``.
    where : str
        The cache's location, for messages.
    keep : callable, optional
        Given an inner chunk's grid coordinates (in units of inner chunks over the whole array),
        whether to decode it; chunks not kept hold the fill value. ``None``: every chunk.
    missing_ok : bool
        A chunk (or inner chunk) that is not stored holds the fill value, as in zarr; ``False``
        refuses it as damage instead (arrays whose every chunk is written).
    rows : (start, stop), optional
        Only this range along the first axis (only the chunks that overlap it are read).

    Returns
    -------
    numpy.ndarray
        ``meta["shape"]`` (the first axis cut to ``rows``), the stored dtype (bfloat16 as
        ``ml_dtypes.bfloat16``).

    Raises
    ------
    Unsupported
        A layout, codec or data type this reader does not handle.
    CorruptCacheError
        A checksum, size or shard index that does not match (or a refused missing chunk).
    """
    lay = check_array(meta, where)
    shape, dtype, outer, inner, chunk, sep = (
        lay.shape,
        lay.dtype,
        lay.outer,
        lay.inner,
        lay.chunk,
        lay.sep,
    )
    sharded, index_at_end = lay.sharded, lay.index_at_end
    start, stop = (0, shape[0]) if rows is None else rows
    if not 0 <= start <= stop <= shape[0]:
        raise Unsupported(f"rows {rows} of {shape[0]}")
    out_shape = (stop - start, *shape[1:])
    if math.prod(out_shape) * dtype.itemsize > MAX_READ_BYTES:
        raise Unsupported(f"a read of {out_shape} (the general path streams it)")
    out = np.full(out_shape, _fill(meta, dtype), dtype=dtype)
    per = tuple(o // i for o, i in zip(outer, inner, strict=True))  # inner chunks per shard
    if math.prod(per) > MAX_CHUNKS_PER_SHARD:
        raise Unsupported(f"{math.prod(per)} inner chunks per shard")
    n_outer = [math.ceil(s / o) for s, o in zip(shape, outer, strict=True)]
    first = range(start // outer[0], math.ceil(stop / outer[0]) if stop > start else 0)

    def wanted(sub: tuple[int, ...]) -> bool:
        lo = sub[0] * inner[0]
        return lo < stop and lo + inner[0] > start and (keep is None or keep(sub))

    for cell in (c for c in np.ndindex(*n_outer) if c[0] in first):
        rel = "c" + "".join(f"{sep}{c}" for c in cell)
        key = f"{path}/{rel}"
        subs = [
            tuple(c * p + q for c, p, q in zip(cell, per, local, strict=True))
            for local in np.ndindex(*per)
        ]
        if not any(wanted(s) for s in subs):
            continue
        try:
            with open(key, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            if missing_ok:
                continue
            raise chunk.damaged(key, "no stored chunk") from None
        except OSError as exc:
            raise Unsupported(f"{key}: {exc}") from exc
        if not sharded:
            _place(out, chunk.decode(data, key), cell, inner, start)
            continue
        n_in = math.prod(per)
        size = 16 * n_in + 4
        if len(data) < size:
            raise chunk.damaged(key, "a shard shorter than its index")
        raw = data[-size:] if index_at_end else data[:size]
        index = np.frombuffer(_checked(raw, key, chunk.damaged), dtype="<u8").reshape(n_in, 2)
        for j, sub in enumerate(subs):
            offset, nbytes = (int(v) for v in index[j])
            if not wanted(sub):
                continue
            if offset == _EMPTY and nbytes == _EMPTY:
                if missing_ok:
                    continue
                raise chunk.damaged(key, f"no inner chunk {sub}")
            if offset + nbytes > len(data):
                raise chunk.damaged(key, "a shard index pointing past the shard's end")
            _place(out, chunk.decode(data[offset : offset + nbytes], key), sub, inner, start)
    return out


def _place(
    out: np.ndarray, block: np.ndarray, cell: Sequence[int], chunk: Sequence[int], start: int
) -> None:
    """Copy a decoded chunk at grid ``cell`` into ``out``, which begins at row ``start`` of the
    array (chunks are cut to ``out``: the array's edges, and the rows asked for)."""
    dst, src = [], []
    for axis, (c, n, size) in enumerate(zip(cell, chunk, out.shape, strict=True)):
        shift = start if axis == 0 else 0
        lo, hi = max(c * n - shift, 0), min((c + 1) * n - shift, size)
        dst.append(slice(lo, hi))
        src.append(slice(lo - (c * n - shift), hi - (c * n - shift)))
    out[tuple(dst)] = block[tuple(src)]
