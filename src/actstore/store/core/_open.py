"""A cache's groups as lazy xarray objects: the engine of :func:`actstore.open`,
:meth:`Cache.dataset` and :meth:`Cache.tree`."""

from __future__ import annotations

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
from actstore.store.core._decode import (
    DECODED_DTYPE,
    decode_variable,
    is_bfloat16,
    strings_as_object,
)
from actstore.store.core._decode import decode_bfloat16 as _decode_all
from actstore.store.core._guard import guard_prompt_set, in_creation, refuse_set_in_creation
from actstore.store.core._metastore import spec_indexes
from actstore.store.core._writer import numpy_dtype
from actstore.store.format._safety import damaged_error_message
from actstore.store.format._schema import ATTR_KEY, DONE_ARRAY, DTYPES, PROBES_GROUP

if TYPE_CHECKING:
    import xarray as xr

    from actstore.store.core._handle import CacheHandle

__all__ = [
    "check_decode",
    "check_dtype",
    "open_group_dataset",
    "open_prompt_set",
    "open_tree",
]


def check_dtype(dtype: str | None) -> None:
    if dtype is not None and dtype not in (*DTYPES, "float64"):
        raise InvalidArgumentError(
            f"expected dtype None or one of {(*DTYPES, 'float64')}, got {dtype!r}"
        )


def check_decode(decode_bfloat16: object) -> None:
    if not isinstance(decode_bfloat16, bool):
        raise InvalidArgumentError(
            f"expected decode_bfloat16 True or False, got {decode_bfloat16!r}; pass a bool"
        )


def open_prompt_set(
    cache: CacheHandle, name: str, *, dtype: str | None = None, decode_bfloat16: bool = True
) -> xr.Dataset:
    """One prompt set as a lazy Dataset; dask chunks = ``read_prompts`` x one layer.

    Casts (*dtype* for the hooks, float32 for other bfloat16 variables when *decode_bfloat16*)
    happen inside the guarded read, on exactly the part of a chunk a task reads.
    """

    check_dtype(dtype)
    check_decode(decode_bfloat16)
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
        dtypes.update({hook: numpy_dtype(dtype) for hook in hooks})
    ds = guard_prompt_set(cache, name, ds, hooks, dtypes)
    ds = strings_as_object(ds.drop_vars([DONE_ARRAY], errors="ignore"))
    if decode_bfloat16:  # bfloat16 coordinates, if any (the guard reads data variables)
        coords = {
            k: decode_variable(v.variable) for k, v in ds.coords.items() if is_bfloat16(v.dtype)
        }
        ds = ds.assign_coords(coords) if coords else ds
    ds.attrs = {ATTR_KEY: info, "prompt_set": name}
    return ds


def open_group_dataset(
    cache: CacheHandle, path: str, *, decode_bfloat16: bool = True
) -> xr.Dataset:
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
    refuse_set_in_creation(cache, path, node)
    ds = strings_as_object(_open_zarr(cache, path, {}))
    return _decode_all(ds) if decode_bfloat16 else ds


def _indexes(cache: CacheHandle, info: dict[str, Any]) -> dict[str, Any] | None:
    """Index coordinates from the spec when the metadata came consolidated (one request for
    the whole open, see :mod:`actstore.store.core._consolidated`); otherwise read as stored."""
    return spec_indexes(info) if cache.scan.consolidated else None


def _open_zarr(
    cache: CacheHandle, path: str, chunks: dict[str, int], indexes: dict[str, Any] | None = None
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
        ) from exc


def open_tree(
    cache: CacheHandle, *, dtype: str | None = None, decode_bfloat16: bool = True
) -> xr.DataTree:
    """The whole cache as a DataTree: ``/<prompt set>`` nodes and ``/probes/<name>`` nodes."""
    import xarray as xr

    nodes: dict[str, xr.Dataset] = {"/": xr.Dataset(attrs={ATTR_KEY: cache.attrs})}
    sets = set(cache.prompt_sets)
    for name in sorted(sets):
        if not cache.set_info(name).get("ready"):
            warnings.warn(
                IncompleteCacheWarning(
                    f"prompt set {name!r} of {cache.url!r} is being created (or its creation "
                    "was interrupted) and is left out; wait, or re-run the extraction to finish it"
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
        if path != PROBES_GROUP and in_creation(group):  # created since the listing above
            warnings.warn(
                IncompleteCacheWarning(
                    f"prompt set {path!r} of {cache.url!r} is being created and is left out; "
                    "wait and open the cache again"
                ),
                stacklevel=3,
            )
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
