"""The checked open: no ``zarr.json`` reaches zarr's parser before the safety scan passed it.

A cache (or any actstore-written Zarr store, e.g. saved probes) is data, never code. Every open
goes through :func:`checked_store`: it scans each metadata document itself (or checks the
consolidated copy, one read), then wraps the store in
:class:`~actstore.store.core._metastore.MetadataStore`, so zarr and xarray read only documents
that passed. :func:`open_store` is the public form for a store that is not a cache.
"""

from __future__ import annotations

import os
from typing import Any

import zarr
from zarr.abc.store import Store

from actstore.errors import CorruptCacheError, InvalidArgumentError, NotACacheError
from actstore.store.core._metastore import MetadataStore, read_consolidated
from actstore.store.format._safety import damaged_error_message, scan_store
from actstore.store.format._safety_limits import ScanResult
from actstore.store.format._storage import make_store, normalize_url

__all__ = ["checked_store", "open_checked_group", "open_store"]


def checked_store(
    store: Any, url: str, *, consolidated: bool = False
) -> tuple[MetadataStore, ScanResult]:
    """Scan every metadata document of *store* and wrap it so zarr reads only checked ones.

    *consolidated*: check and pin the root's consolidated metadata instead (one read), falling
    back to the per-file scan when there is none or it is stale or damaged.

    Raises
    ------
    UnsafeCacheError
        Metadata that must never be opened (codecs or dtypes outside the allow-list, Zarr v2,
        sizes over the limits, traversal names).
    CorruptCacheError
        A root or group document that cannot be read (damaged arrays are left in the returned
        scan, for the caller to name when they are read).
    """
    found = read_consolidated(store, url) if consolidated else None
    if found is not None:
        scan, pins = found
        checked = MetadataStore(store, pins)
    else:
        scan = scan_store(store, url)
        checked = MetadataStore(store)
    if scan.unreadable_groups:
        key = scan.unreadable_groups[0]
        raise CorruptCacheError(damaged_error_message(url, key, scan.damaged[key]))
    return checked, scan


def open_checked_group(store: MetadataStore, url: str, mode: str) -> zarr.Group:
    """The root group of a checked store; anything zarr still refuses is :class:`NotACacheError`."""
    try:
        return zarr.open_group(store=store, mode=mode, zarr_format=3)
    except (ValueError, OSError) as exc:
        raise NotACacheError(
            f"expected a Zarr v3 group at {url!r}, got {type(exc).__name__}: {exc}"
        ) from exc


def open_store(
    location: str | os.PathLike[str],
    *,
    mode: str = "r",
    storage_options: dict[str, Any] | None = None,
) -> Store:
    """Open the Zarr v3 store at *location* after checking all of its metadata.

    For actstore-written stores that are not caches (e.g. probes saved as ``.zarr``): every
    ``zarr.json`` is checked before zarr parses any of it, and zarr reads only the documents that
    passed. Open a cache with :func:`open_cache` or :func:`actstore.open` instead.

    Parameters
    ----------
    location
        A directory, ``.zip`` file or fsspec URL (``s3://...``, ``memory://...``).
    mode
        ``"r"`` (read-only, default) or ``"r+"`` (read-write; not for a ``.zip``).
    storage_options
        Passed to fsspec (credentials, endpoint) for URLs.

    Returns
    -------
    zarr.abc.store.Store
        A store to pass to ``zarr.open_group`` or ``xarray.open_zarr``.

    Raises
    ------
    InvalidArgumentError
        *mode* is not ``"r"`` or ``"r+"``.
    UnsafeCacheError
        Metadata that must never be opened (codecs or data types outside the allow-list,
        Zarr v2 metadata, sizes over the limits, names pointing outside the store).
    CorruptCacheError
        Any metadata document that is damaged (named, with the fix).

    Examples
    --------
    >>> import xarray as xr  # doctest: +SKIP
    >>> ds = xr.open_zarr(open_store("probes.zarr"), consolidated=False)  # doctest: +SKIP
    """
    if mode not in ("r", "r+"):
        raise InvalidArgumentError(f"expected mode 'r' or 'r+', got {mode!r}")
    url = normalize_url(location)
    store = make_store(url, read_only=mode == "r", storage_options=storage_options)
    checked, scan = checked_store(store, url)
    for key, problem in sorted(scan.damaged.items()):
        raise CorruptCacheError(damaged_error_message(url, key, problem))
    for name, problem in sorted(scan.damaged_sets.items()):
        raise CorruptCacheError(damaged_error_message(url, f"{name}/zarr.json", problem))
    return checked
