"""Reads that fail loudly: damaged or deleted chunks raise :class:`CorruptCacheError`, not numbers.

zarr checks each chunk's crc32c on read and raises a bare ``ValueError`` deep inside a dask task;
a shard file that was deleted, or truncated to nothing, reads silently as the fill value (zeros).
:func:`guard_prompt_set` closes both holes for a prompt set opened with :func:`actstore.open`:

* at open, every block recorded complete must have its shard objects, and (on a local disk)
  each must be at least as long as its shard index: otherwise the open fails naming them;
* every variable is read through :class:`GuardedArray`, which turns any decode failure into
  :class:`CorruptCacheError` naming the array, the chunk keys and the fix, and converts what it
  read to the variable's in-memory dtype (bfloat16 -> float32 decoding, ``dtype=`` casts): only
  the part a dask task slices is read and converted.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from actstore.errors import CorruptCacheError
from actstore.store.format._schema import ATTR_KEY, DONE_ARRAY, PROBES_GROUP
from actstore.store.format._storage import is_local, is_zip
from actstore.store.format._zarr import sync

if TYPE_CHECKING:
    import xarray as xr

    from actstore.store.core._handle import CacheHandle

__all__ = [
    "GuardedArray",
    "damaged_shards",
    "guard_prompt_set",
    "in_creation",
    "min_shard_bytes",
    "open_failure",
    "refuse_set_in_creation",
]

_FIX = "run `actstore verify {url}` to list the damage and `actstore repair {url}` to fix it"


def min_shard_bytes(arr: zarr.Array) -> int:
    """Smallest possible size of a stored shard: its index (16 bytes per chunk + crc32c)."""
    if arr.shards is None:
        return 1
    per_shard = int(np.prod([s // c for s, c in zip(arr.shards, arr.chunks)]))
    return 16 * per_shard + 4


def damaged_shards(cache: CacheHandle, name: str, hooks: list[str], done: set[int]) -> list[str]:
    """Keys of shard objects of recorded blocks that are absent or shorter than their index."""
    bad = []
    root = Path(cache.url) if is_local(cache.url) and not is_zip(cache.url) else None
    for hook in hooks:
        arr = zarr.open_array(store=cache.store, path=f"{name}/{hook}", mode="r")
        prefix = f"{name}/{hook}/"

        async def keys(prefix: str = prefix) -> set[str]:
            return {k[len(prefix) :] async for k in cache.store.list_prefix(prefix + "c/")}

        present = sync(keys())
        floor = min_shard_bytes(arr)
        outer: tuple[int, ...] = arr.shards or arr.chunks  # type: ignore[assignment]
        rest = [range(max(1, -(-s // c))) for s, c in zip(arr.shape[1:], outer[1:])]
        for b in sorted(done):
            for tail in itertools.product(*rest):
                key = arr.metadata.encode_chunk_key((b, *tail))
                if key not in present:
                    bad.append(f"{prefix}{key} (block {b}: deleted)")
                elif root is not None and (root / prefix / key).stat().st_size < floor:
                    bad.append(f"{prefix}{key} (block {b}: truncated)")
    return bad


class GuardedArray:
    """A zarr array whose reads raise :class:`CorruptCacheError` naming the damaged chunks.

    Reads are returned as *dtype* (default: the stored dtype), converted after reading.
    """

    def __init__(self, arr: zarr.Array, path: str, url: str, dtype: Any = None) -> None:
        self._arr = arr
        self.path = path
        self.url = url
        self.shape = arr.shape
        self.dtype = np.dtype(arr.dtype if dtype is None else dtype)
        self.ndim = arr.ndim

    def _keys(self, key: tuple[slice, ...]) -> list[str]:
        outer: tuple[int, ...] = self._arr.shards or self._arr.chunks  # type: ignore[assignment]
        ranges = []
        for k, c, s in zip(key, outer, self.shape):
            start, stop, _ = k.indices(s) if isinstance(k, slice) else (int(k), int(k) + 1, 1)
            ranges.append(range(start // c, max(start // c + 1, -(-stop // c))))
        return [
            f"{self.path}/{self._arr.metadata.encode_chunk_key(coords)}"
            for coords in itertools.islice(itertools.product(*ranges), 8)
        ]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        try:
            values = self._arr[key]
        except Exception as exc:  # any decode failure means damaged bytes
            keys = ", ".join(self._keys(key))
            raise CorruptCacheError(
                f"expected intact data in array {self.path!r} of {self.url!r}, got "
                f"{type(exc).__name__}: {exc} reading chunk(s) {keys}; " + _FIX.format(url=self.url)
            ) from exc
        return np.asarray(values).astype(self.dtype, copy=False)


def guard_prompt_set(
    cache: CacheHandle,
    name: str,
    ds: xr.Dataset,
    hooks: list[str],
    dtypes: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Check recorded shards exist, then read every dask-backed variable through a guard.

    *dtypes* maps variable names to the dtype their reads are converted to (others: as stored).
    """
    import dask.array as da
    from dask.base import tokenize

    from actstore.store.format._markers import missing_from_listing

    lost = [h for h in hooks if h not in ds.variables]
    if lost:  # xarray skips an array whose zarr.json does not parse: never a silent gap
        raise open_failure(cache, name, KeyError(f"arrays {lost} unreadable"))
    n_blocks = int(cache.set_info(name)["layout"]["n_blocks"])
    done = set(range(n_blocks)) - set(missing_from_listing(cache.store, name, n_blocks))
    bad = damaged_shards(cache, name, hooks, done)
    if bad:
        shown = "; ".join(bad[:10]) + ("; ..." if len(bad) > 10 else "")
        raise CorruptCacheError(
            f"expected a shard for every block recorded complete in prompt set {name!r}, got "
            f"{len(bad)} damaged: {shown}; " + _FIX.format(url=cache.url)
        )
    group = zarr.open_group(store=cache.store, path=name, mode="r")
    for var in list(ds.variables):
        data = ds[var].variable._data
        if var in ds.indexes or var == DONE_ARRAY or not isinstance(data, da.Array):
            continue
        arr = group[str(var)]
        out = (dtypes or {}).get(str(var))
        guarded = GuardedArray(arr, f"{name}/{var}", cache.url, out)  # type: ignore[arg-type]
        token = tokenize(cache.url, name, var, data.chunks, str(guarded.dtype))
        dask_arr = da.from_array(
            guarded,
            chunks=data.chunks,
            name=f"actstore-{var}-{token}",
            asarray=False,
            lock=False,
            meta=np.empty((0,) * arr.ndim, dtype=guarded.dtype),
        )
        ds[var] = ds[var].copy(data=dask_arr)
    return ds


def open_failure(cache: CacheHandle, name: str, exc: Exception) -> CorruptCacheError:
    """The error for a prompt set that xarray could not open: name damaged metadata if any."""
    from actstore.store.format._walk import iter_arrays_safely

    damaged = [
        f"{path}/zarr.json ({type(err).__name__}: {err})"
        for path, err in iter_arrays_safely(cache.store, f"{name}/")
        if isinstance(err, Exception)
    ]
    what = "; ".join(damaged) if damaged else f"{type(exc).__name__}: {exc}"
    return CorruptCacheError(
        f"expected readable metadata in prompt set {name!r} of {cache.url!r}, got {what}; "
        + _FIX.format(url=cache.url)
    )


def in_creation(group: zarr.Group) -> bool:
    """True when top-level *group* is a prompt set some extraction is creating right now (or was
    killed creating): no attributes and no members yet, or attributes that name a prompt set.

    The caller asks only about groups that were not among the prompt sets it listed: a set whose
    attributes appeared after that listing was not covered by the open-time metadata scan, so it
    is never read (as a prompt set or as a plain group) in this open.
    """
    attrs = dict(group.attrs)
    if not attrs:
        return not any(True for _ in group.members())
    info = attrs.get(ATTR_KEY)
    return isinstance(info, Mapping) and "spec" in info


def refuse_set_in_creation(cache: CacheHandle, path: str, group: zarr.Group) -> None:
    """Refuse top-level *group* (as just read, at *path*) when :func:`in_creation` says a prompt
    set is being created there, instead of returning an empty or partial Dataset without a word.

    The caller passes the node it will read from, so the decision and the read see one state: a
    group absent at one read and created before the next is never read as a plain group.
    """
    from actstore.errors import IncompleteCacheError

    if "/" not in path and path != PROBES_GROUP and in_creation(group):
        raise IncompleteCacheError(
            f"expected prompt set {path!r} of {cache.url!r} to be created, got one an extraction "
            "is creating (or was killed creating); wait and open it again, or re-run the extraction"
        )
