"""Open a cache lazily as xarray objects: :func:`open` (``actstore.open``)."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

import zarr

from actstore.errors import (
    ActstoreError,
    CorruptCacheError,
    IncompleteCacheError,
    IncompleteCacheWarning,
    InvalidArgumentError,
    UnknownNameError,
)
from actstore.store._guard import guard_prompt_set, refuse_set_in_creation
from actstore.store._safety import damaged_error_message
from actstore.store._schema import ATTR_KEY, DONE_ARRAY, DTYPES

if TYPE_CHECKING:
    import xarray as xr

    from actstore.store._cache import Cache

__all__ = ["open", "open_prompt_set", "open_tree"]


def open(
    url: str | os.PathLike[str],
    group: str | None = None,
    *,
    storage_options: dict[str, Any] | None = None,
    dtype: str | None = None,
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
        Cast activations lazily to this dtype (e.g. ``"float32"``); default: as stored
        (``ml_dtypes.bfloat16`` for bfloat16, bit-exact).

    A prompt set with missing blocks opens with an :class:`IncompleteCacheWarning` that lists them
    (their prompts read as zeros).
    """
    from actstore.store._cache import open_cache
    from actstore.store._metastore import listed

    cache = open_cache(url, mode="r", storage_options=storage_options, consolidated=True)
    with listed(cache, group) as cache:
        if group is None:
            return open_tree(cache, dtype=dtype)
        group = group.strip("/")
        if group in cache.prompt_sets:
            return open_prompt_set(cache, group, dtype=dtype)
        refuse_set_in_creation(cache, group)
        return open_group_dataset(cache, group)


def _check_dtype(dtype: str | None) -> None:
    if dtype is not None and dtype not in (*DTYPES, "float64"):
        raise InvalidArgumentError(
            f"expected dtype None or one of {(*DTYPES, 'float64')}, got {dtype!r}"
        )


def open_prompt_set(cache: Cache, name: str, *, dtype: str | None = None) -> xr.Dataset:
    """One prompt set as a lazy Dataset; dask chunks = ``read_prompts`` x one layer."""

    _check_dtype(dtype)
    cache.check_readable(name)
    info = cache.set_info(name)
    if not info.get("ready"):
        raise IncompleteCacheError(
            f"expected prompt set {name!r} of {cache.url!r} to be created, got one whose creation "
            "was interrupted; re-run the extraction to finish it"
        )
    missing = cache.missing_blocks(name)
    if missing:
        block = int(info["layout"]["block_size"])
        shown = ", ".join(str(b) for b in missing[:20]) + (", ..." if len(missing) > 20 else "")
        warnings.warn(
            IncompleteCacheWarning(
                f"prompt set {name!r} of {cache.url!r} is incomplete: {len(missing)} of "
                f"{info['layout']['n_blocks']} blocks missing ({shown}; {block} prompts each), "
                "which read as zeros; resume the extraction to finish it"
            ),
            stacklevel=3,
        )
    chunks = {"prompt": int(info["layout"]["read_prompts"]), "layer": 1}
    ds = _open_zarr(cache, name, chunks, indexes=_indexes(cache, info))
    ds = guard_prompt_set(cache, name, ds, list(info["spec"]["hooks"]))
    ds = _strings_as_object(ds.drop_vars([DONE_ARRAY], errors="ignore"))
    if dtype is not None:
        for hook in info["spec"]["hooks"]:
            ds[hook] = ds[hook].astype(dtype)
    ds.attrs = {ATTR_KEY: info, "prompt_set": name}
    return ds


def open_group_dataset(cache: Cache, path: str) -> xr.Dataset:
    """Any other group (e.g. ``probes/<name>``) as a lazy Dataset."""

    try:
        node = zarr.open_group(store=cache.store, path=path, mode="r", zarr_format=3)
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        node = None
    if node is None:
        raise UnknownNameError(
            f"expected a prompt set ({cache.prompt_sets}) or group of {cache.url!r}, got "
            f"{path!r}; list them with `actstore info`"
        )
    return _strings_as_object(_open_zarr(cache, path, {}))


def _indexes(cache: Cache, info: dict[str, Any]) -> dict[str, Any] | None:
    """Index coordinates from the spec when the metadata came consolidated (one request for
    the whole open, see :mod:`actstore.store._consolidated`); otherwise read as stored."""
    from actstore.store._metastore import spec_indexes

    return spec_indexes(info) if cache.scan.consolidated else None


def _open_zarr(
    cache: Cache, path: str, chunks: dict[str, int], indexes: dict[str, Any] | None = None
) -> xr.Dataset:
    """``xr.open_zarr`` of one group, after the scan; metadata zarr or xarray still cannot read
    (an inconsistency the scan does not model) is reported as damage, never as a raw exception.
    *indexes* (name -> values) replace the stored index coordinates, which are then not read."""
    import xarray as xr

    for key, problem in sorted(cache.scan.damaged_under(path).items()):
        raise CorruptCacheError(damaged_error_message(cache.url, key, problem))
    try:
        ds = xr.open_zarr(
            cache.store,
            group=path,
            consolidated=False,
            chunks=chunks,
            zarr_format=3,
            use_zarr_fill_value_as_mask=False,
            decode_times=False,
            drop_variables=list(indexes or ()),
        )
        return ds if indexes is None else ds.assign_coords({k: (k, v) for k, v in indexes.items()})
    except (ActstoreError, MemoryError):
        raise
    except Exception as exc:  # xarray decodes index coordinates now: damaged bytes fail any way
        # (zstd RuntimeError, ValueError, ...); the scan already refused unsafe codecs and sizes
        raise CorruptCacheError(
            damaged_error_message(cache.url, f"{path}/", f"{type(exc).__name__}: {exc}")
        ) from None


def _strings_as_object(ds: xr.Dataset) -> xr.Dataset:
    """numpy StringDType (what zarr returns) -> object arrays of str, which every library reads."""
    for name, var in list(ds.variables.items()):
        if var.dtype.kind == "T":
            if name in ds.indexes:
                ds = ds.assign_coords({name: (var.dims, var.values.astype(object), var.attrs)})
            else:
                ds[name] = var.astype(object)
    return ds


def open_tree(cache: Cache, *, dtype: str | None = None) -> xr.DataTree:
    """The whole cache as a DataTree: ``/<prompt set>`` nodes and ``/probes/<name>`` nodes."""
    import xarray as xr

    nodes: dict[str, xr.Dataset] = {"/": xr.Dataset(attrs={ATTR_KEY: cache.attrs})}
    sets = set(cache.prompt_sets)
    for name in sorted(sets):
        if not cache.set_info(name).get("ready"):
            warnings.warn(
                IncompleteCacheWarning(
                    f"prompt set {name!r} of {cache.url!r} was interrupted during creation and "
                    "is left out; re-run the extraction to finish it"
                ),
                stacklevel=3,
            )
            continue
        nodes[f"/{name}"] = open_prompt_set(cache, name, dtype=dtype)
    for path, group in cache.root.groups():
        if path in sets:
            continue
        cache.check_group_readable(path)
        for sub in _groups_with_arrays(group, path):
            nodes[f"/{sub}"] = open_group_dataset(cache, sub)
        nodes.setdefault(f"/{path}", xr.Dataset(attrs=dict(group.attrs)))
    return xr.DataTree.from_dict(nodes)


def _groups_with_arrays(group: zarr.Group, path: str) -> list[str]:
    out = [path] if any(True for _ in group.array_keys()) else []
    for name, child in group.groups():
        out.extend(_groups_with_arrays(child, f"{path}/{name}"))
    return out
