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
from actstore.store._decode import DECODED_DTYPE, decode_variable, is_bfloat16
from actstore.store._decode import decode_bfloat16 as _decode_all
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
    from actstore.store._cache import open_cache
    from actstore.store._metastore import listed

    _check_decode(decode_bfloat16)
    _check_dtype(dtype)
    cache = open_cache(url, mode="r", storage_options=storage_options, consolidated=True)
    with listed(cache, group) as cache:
        if group is None:
            return open_tree(cache, dtype=dtype, decode_bfloat16=decode_bfloat16)
        group = group.strip("/")
        if group in cache.prompt_sets:
            return open_prompt_set(cache, group, dtype=dtype, decode_bfloat16=decode_bfloat16)
        refuse_set_in_creation(cache, group)
        return open_group_dataset(cache, group, decode_bfloat16=decode_bfloat16)


def _check_dtype(dtype: str | None) -> None:
    if dtype is not None and dtype not in (*DTYPES, "float64"):
        raise InvalidArgumentError(
            f"expected dtype None or one of {(*DTYPES, 'float64')}, got {dtype!r}"
        )


def _check_decode(decode_bfloat16: object) -> None:
    if not isinstance(decode_bfloat16, bool):
        raise InvalidArgumentError(
            f"expected decode_bfloat16 True or False, got {decode_bfloat16!r}; pass a bool"
        )


def open_prompt_set(
    cache: Cache, name: str, *, dtype: str | None = None, decode_bfloat16: bool = True
) -> xr.Dataset:
    """One prompt set as a lazy Dataset; dask chunks = ``read_prompts`` x one layer.

    Casts (*dtype* for the hooks, float32 for other bfloat16 variables when *decode_bfloat16*)
    happen inside the guarded read, on exactly the part of a chunk a task reads.
    """

    _check_dtype(dtype)
    _check_decode(decode_bfloat16)
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
    hooks = list(info["spec"]["hooks"])
    dtypes: dict[str, Any] = {}
    if decode_bfloat16:
        dtypes = {str(k): DECODED_DTYPE for k, v in ds.data_vars.items() if is_bfloat16(v.dtype)}
    if dtype is not None:
        from actstore.store._writer import numpy_dtype

        dtypes.update({hook: numpy_dtype(dtype) for hook in hooks})
    ds = guard_prompt_set(cache, name, ds, hooks, dtypes)
    ds = _strings_as_object(ds.drop_vars([DONE_ARRAY], errors="ignore"))
    if decode_bfloat16:  # bfloat16 coordinates, if any (the guard reads data variables)
        coords = {
            k: decode_variable(v.variable) for k, v in ds.coords.items() if is_bfloat16(v.dtype)
        }
        ds = ds.assign_coords(coords) if coords else ds
    ds.attrs = {ATTR_KEY: info, "prompt_set": name}
    return ds


def open_group_dataset(cache: Cache, path: str, *, decode_bfloat16: bool = True) -> xr.Dataset:
    """Any other group (e.g. ``probes/<name>``) as a lazy Dataset (bfloat16 decoded lazily)."""

    try:
        node = zarr.open_group(store=cache.store, path=path, mode="r", zarr_format=3)
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        node = None
    if node is None:
        raise UnknownNameError(
            f"expected a prompt set ({cache.prompt_sets}) or group of {cache.url!r}, got "
            f"{path!r}; list them with `actstore info`"
        )
    ds = _strings_as_object(_open_zarr(cache, path, {}))
    return _decode_all(ds) if decode_bfloat16 else ds


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


def open_tree(
    cache: Cache, *, dtype: str | None = None, decode_bfloat16: bool = True
) -> xr.DataTree:
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
        nodes[f"/{name}"] = open_prompt_set(
            cache, name, dtype=dtype, decode_bfloat16=decode_bfloat16
        )
    for path, group in cache.root.groups():
        if path in sets:
            continue
        cache.check_group_readable(path)
        for sub in _groups_with_arrays(group, path):
            nodes[f"/{sub}"] = open_group_dataset(cache, sub, decode_bfloat16=decode_bfloat16)
        nodes.setdefault(f"/{path}", xr.Dataset(attrs=dict(group.attrs)))
    return xr.DataTree.from_dict(nodes)


def _groups_with_arrays(group: zarr.Group, path: str) -> list[str]:
    out = [path] if any(True for _ in group.array_keys()) else []
    for name, child in group.groups():
        out.extend(_groups_with_arrays(child, f"{path}/{name}"))
    return out
