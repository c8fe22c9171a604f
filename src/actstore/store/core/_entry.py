"""Create and open caches: :func:`create_cache`, :func:`open_cache` and :func:`open`
(``actstore.open``), the entry points that hand out a :class:`~actstore.store.core._cache.Cache`."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from actstore._locations import location_error, location_errors
from actstore._version import __version__
from actstore.errors import (
    ActstoreError,
    InvalidArgumentError,
    NotACacheError,
    ReadOnlyError,
    SchemaVersionError,
    StoreNotFoundError,
)
from actstore.store.core._arrays import open_or_create_group
from actstore.store.core._cache import Cache
from actstore.store.core._checked import checked_store, open_checked_group
from actstore.store.core._metastore import MetadataStore, _node_key, nodes_match
from actstore.store.core._open import (
    check_decode,
    check_dtype,
    open_group_dataset,
    open_prompt_set,
    open_tree,
)
from actstore.store.format._dtype import register_bfloat16
from actstore.store.format._enospc import disk_full_as_error
from actstore.store.format._partial import is_partial
from actstore.store.format._schema import (
    ATTR_KEY,
    SCHEMA_VERSION,
    _jsonable,
    _jsonable_mapping,
)
from actstore.store.format._storage import directory_lock, is_local, make_store, normalize_url
from actstore.store.format._zarr import sync

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["create_cache", "listed", "open", "open_cache"]


def _library_versions() -> dict[str, str]:
    # Read from the installed metadata: importing xarray only for its version costs ~0.6 s.
    from importlib.metadata import PackageNotFoundError, version

    out = {"actstore": __version__, "zarr": zarr.__version__, "numpy": np.__version__}
    for name in ("xarray", "numcodecs"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - both are dependencies
            out[name] = "unknown"
    out["python"] = platform.python_version()
    return out


def create_cache(
    url: str | os.PathLike[str],
    *,
    provenance: Mapping[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Cache:
    """Create an empty cache at *url*, or open the existing one for writing (idempotent).

    Safe when several processes call it at once for the same URL: they all end with one cache.

    Parameters
    ----------
    url
        A directory path or an fsspec URL (``memory://...``, ``s3://bucket/key``).
    provenance
        JSON values recorded in the root's attributes (who made the cache); never compared.
        Ignored when the cache exists.
    storage_options
        fsspec options for a URL (credentials, endpoint).

    Returns
    -------
    Cache
        The cache opened in mode ``"r+"``; write with :meth:`Cache.prompt_set_writer`.

    Raises
    ------
    NotACacheError
        *url* holds other files or objects, or is a file.
    InvalidArgumentError
        *provenance* is not a mapping of JSON values.
    ReadOnlyError
        *url* is a ``.zip`` (zip caches are read-only: write a directory, then copy it).
    ActstoreError
        A location that cannot be written (permissions, a missing bucket), one line naming it.

    Examples
    --------
    >>> cache = create_cache("memory://doc/cache.zarr", provenance={"extractor": "mine"})
    >>> cache.is_complete()
    True
    """
    register_bfloat16()
    if provenance is not None:  # refused before anything is written
        provenance = _jsonable_mapping(provenance, "provenance")
    url = normalize_url(url)
    with location_errors(url, "write"):
        return _create_cache(url, provenance, storage_options)


def _create_cache(
    url: str, provenance: Mapping[str, Any] | None, storage_options: dict[str, Any] | None
) -> Cache:
    store = make_store(url, read_only=False, storage_options=storage_options)
    if sync(store.exists("zarr.json")):
        try:
            return open_cache(url, mode="r+", storage_options=storage_options)
        except NotACacheError:
            # A bare root is a creation killed (or still running) between writing the root group
            # and its attributes: finish it. Anything else may be a concurrent creator that wrote
            # the attributes meanwhile: look once more, and let that answer stand.
            if not _is_bare_root(store):
                return open_cache(url, mode="r+", storage_options=storage_options)
    path = url if is_local(url) else None
    other = None if path is not None else sync(_other_key(store))
    if other is not None:  # the rule for directories below, on fsspec URLs (memory://, s3://)
        raise NotACacheError(
            f"expected an empty or new location for a new cache, got {url!r} with other objects "
            f"in it (e.g. {other!r}); pick a new URL"
        )
    if path is not None and os.path.isfile(path):
        raise NotACacheError(f"expected a directory for a new cache, got the file {url!r}")
    # A zarr.json that appeared since the check above is a concurrent creator's root, not
    # "other files": fall through and reuse it (mode "a" below), then open_cache compares.
    if (
        path is not None
        and os.path.isdir(path)
        and _user_files(path)
        and not os.path.exists(os.path.join(path, "zarr.json"))
    ):
        raise NotACacheError(
            f"expected an empty or new directory for a new cache, got {url!r} with other files "
            "in it; pick a new path"
        )
    info = {
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "library_versions": _library_versions(),
        "provenance": _jsonable(dict(provenance or {}), "provenance"),
    }
    try:
        # mode "a" creates the group only when it is missing; a concurrent creator's is reused.
        # zarr's create is check-then-write, so a local creator that lost the race could replace
        # the winner's root (attributes and all): creators of one local cache take turns.
        with disk_full_as_error(url, "creating the cache"), _creating(path):
            root = open_or_create_group(store)
            if ATTR_KEY not in root.attrs:
                root.attrs[ATTR_KEY] = info
    except PermissionError as exc:
        raise ReadOnlyError(
            f"expected a writable location for a new cache, got {exc}; pick a writable path"
        ) from exc
    cache = open_cache(url, mode="r+", storage_options=storage_options)
    cache.consolidate()
    return cache


@contextlib.contextmanager
def _creating(path: str | None) -> Iterator[None]:
    """Lock the local cache directory while its root is created (released before anything else
    locks it, see :func:`directory_lock`)."""
    if path is None:
        yield
        return
    os.makedirs(path, exist_ok=True)
    with directory_lock(path):
        yield


def _user_files(path: str) -> list[str]:
    """Files of a directory, ignoring zarr's temporary ``.partial`` files of a killed creation."""
    return [f for f in os.listdir(path) if not is_partial(f)]


def _is_bare_root(store: Any) -> bool:
    """True for a root group with no attributes and no members (an interrupted creation)."""
    try:
        root = zarr.open_group(store=store, mode="r", zarr_format=3)
        return not dict(root.attrs) and not any(True for _ in root.members())
    except Exception:  # damaged metadata is not "bare": leave it to open_cache's message
        return False


def open_cache(
    url: str | os.PathLike[str],
    *,
    mode: str = "r",
    storage_options: dict[str, Any] | None = None,
    consolidated: bool = False,
) -> Cache:
    """Open an existing cache: ``mode="r"`` (default, read-only) or ``"r+"`` (read-write).

    Every ``zarr.json`` is checked before zarr parses it (docs/explanation/safety.md).

    Parameters
    ----------
    url
        A directory, a ``.zip`` file (read-only) or an fsspec URL.
    mode
        ``"r"`` (read-only) or ``"r+"`` (also write derived data and resume prompt sets).
    storage_options
        fsspec options for a URL (credentials, endpoint).
    consolidated
        Read a remote cache's metadata from its consolidated copy, in one read, instead of file
        by file.

    Returns
    -------
    Cache

    Raises
    ------
    InvalidArgumentError
        *mode* is neither ``"r"`` nor ``"r+"``.
    StoreNotFoundError
        Nothing at *url*.
    NotACacheError
        *url* holds something that is not an actstore cache.
    UnsafeCacheError
        Metadata the safety scan refuses (a pickle codec, oversized documents, links, ...).
    ActstoreError
        Any other refusal (a newer schema version, damage), one line naming it.
    """
    register_bfloat16()
    if mode not in ("r", "r+"):
        raise InvalidArgumentError(f"expected mode 'r' or 'r+', got {mode!r}")
    url = normalize_url(url)
    if is_local(url) and not os.path.exists(url):
        raise StoreNotFoundError(
            f"expected a cache at {url!r}, got no such file or directory; check the path or "
            "create it with `actstore extract`"
        )
    with location_errors(url, "read"):  # a missing bucket, refused credentials, no endpoint
        return _open_cache(url, mode, storage_options, consolidated)


def _open_cache(
    url: str, mode: str, storage_options: dict[str, Any] | None, consolidated: bool
) -> Cache:
    try:
        store = make_store(url, read_only=mode == "r", storage_options=storage_options)
        has_root = sync(store.exists("zarr.json"))
    except FileNotFoundError as exc:
        raise StoreNotFoundError(f"expected a cache at {url!r}, got nothing there") from exc
    except ActstoreError:  # e.g. ReadOnlyError: a zip opened for writing
        raise
    except OSError as exc:
        if not is_local(url) or isinstance(exc, PermissionError):
            raise location_error(exc, url, "read") from exc
        raise NotACacheError(f"expected a Zarr v3 cache at {url!r}, got {exc}") from exc
    if not has_root:
        if is_local(url) and os.path.isdir(url) and os.listdir(url) and not _user_files(url):
            raise StoreNotFoundError(  # a creation killed while writing the root: start again
                f"expected a cache at {url!r}, got only the temporary files of an interrupted "
                "creation; re-run the extraction to create it"
            )
        if not is_local(url) and not sync(_has_any_key(store)):
            raise StoreNotFoundError(f"expected a cache at {url!r}, got nothing there")
        raise NotACacheError(
            f"expected an actstore cache (a Zarr v3 group) at {url!r}, got no zarr.json there; "
            "pass the cache's top-level path"
        )
    # a cache is data, never code: every zarr.json is checked before zarr parses any of them,
    # and zarr reads them only through MetadataStore, which hands on nothing unchecked
    remote = consolidated and mode == "r" and not is_local(url)  # local reads are cheap
    store, scan = checked_store(store, url, consolidated=remote)
    root = open_checked_group(store, url, "r" if mode == "r" else "r+")
    info = root.attrs.get(ATTR_KEY)
    if not isinstance(info, Mapping) or "schema_version" not in info:
        raise NotACacheError(
            f"expected an actstore cache at {url!r}, got a Zarr group without "
            f"attrs[{ATTR_KEY!r}]; it was not written by actstore"
        )
    if info["schema_version"] != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"expected schema version {SCHEMA_VERSION}, got {info['schema_version']} in {url!r}; "
            "use the actstore version that wrote it (see attrs library_versions) or re-extract"
        )
    return Cache(
        url=url, store=store, root=root, mode=mode, storage_options=storage_options, scan=scan
    )


async def _other_key(store: Any) -> str | None:
    """A key at a location with no root ``zarr.json`` (``None`` when there is none, or when a
    concurrent creator's root has appeared since: that one is reused)."""
    async for key in store.list():
        if key != "zarr.json":
            return None if await store.exists("zarr.json") else key
    return None


async def _has_any_key(store: Any) -> bool:
    async for _ in store.list():
        return True
    return False


def open(
    url: str | os.PathLike[str],
    group: str | None = None,
    *,
    storage_options: dict[str, Any] | None = None,
    dtype: str | None = None,
    decode_bfloat16: bool = True,
) -> xr.DataTree | xr.Dataset:
    """Open a cache read-only as a lazy, dask-backed :class:`xarray.DataTree` (or one Dataset).

    Parameters
    ----------
    url
        Cache path, ``.zip`` file or fsspec URL (``s3://bucket/cache.zarr``, ``memory://...``).
    group
        A prompt set (``"physics"``) or another group path (``"probes/value"``): returns that
        group as an :class:`xarray.Dataset` with dims ``(prompt, layer, token, d_model)``.
    storage_options
        Passed to fsspec (credentials, endpoint) for URLs.
    dtype
        Cast activations (the hook variables) lazily to this dtype (``"float16"``, ``"float32"``,
        ``"float64"`` or ``"bfloat16"``); default: as stored, after bfloat16 decoding.
    decode_bfloat16
        Decode bfloat16 variables (activations, derived variables) to float32 lazily on read, so
        every xarray and numpy operation works on them (exact: every bfloat16 value is a float32
        value); ``encoding["dtype"]`` keeps the stored dtype, ``ml_dtypes.bfloat16``. ``False``
        returns them as stored, ``ml_dtypes.bfloat16``, bit-exact (xarray reductions refuse that
        dtype). Float16 and float32 variables are never changed.

    Returns
    -------
    xarray.DataTree or xarray.Dataset
        The tree (``group=None``) or one group; activations ``(prompt, layer, token, d_model)``.

    Raises
    ------
    InvalidArgumentError
        *dtype* is not one of the names above, or *decode_bfloat16* is not a bool.
    StoreNotFoundError, NotACacheError, CorruptCacheError, UnknownNameError
        No cache, not a cache, damaged metadata, or an unknown *group*.

    A prompt set with missing blocks opens with an :class:`IncompleteCacheWarning` that lists them
    (their prompts read as zeros).
    """
    check_decode(decode_bfloat16)
    check_dtype(dtype)
    cache = open_cache(url, mode="r", storage_options=storage_options, consolidated=True)
    with listed(cache, group) as cache:
        if group is None:
            return open_tree(cache, dtype=dtype, decode_bfloat16=decode_bfloat16)
        group = group.strip("/")
        if group in cache.prompt_sets:
            return open_prompt_set(cache, group, dtype=dtype, decode_bfloat16=decode_bfloat16)
        return open_group_dataset(cache, group, decode_bfloat16=decode_bfloat16)


@contextlib.contextmanager
def listed(cache: Cache, group: str | None) -> Iterator[Cache]:
    """Within ``actstore.open``: list the part of the cache being opened once (markers and shard
    checks answer from that list), and fall back to the per-file scan when the nodes listed
    are not exactly the consolidated ones (written since, or by another tool)."""
    store = cache.store
    if not (isinstance(store, MetadataStore) and store.pins is not None):
        yield cache
        return
    top = (group or "").strip("/").split("/")[0]
    prefix = f"{top}/" if top else ""
    with store.listing(prefix) as listed:
        fresh = listed is not None and nodes_match(store, listed, cache.scan.digests, prefix)
        if fresh and (not top or _node_key(top) in store.pins):
            yield cache
            return
    yield open_cache(cache.url, mode="r", storage_options=cache.storage_options)
