"""Variables and groups added after extraction: ``pred_<probe>``, ``probes/<name>``.

A derived variable never replaces stored data: its name may not be a reserved name, a hook, a name
starting like an activation (``resid_``, ``attn_``, ...), or the name of any stored variable that
is not itself derived (a label, metadata, activations). Writing a derived variable again under the
same name replaces only that variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from actstore.errors import InvalidArgumentError, UnknownNameError
from actstore.store.core._arrays import meta_compressors, require_array
from actstore.store.core._decode import decode_bfloat16 as decode
from actstore.store.core._decode import strings_as_object
from actstore.store.format._dtype import is_number_dtype
from actstore.store.format._schema import ATTR_KEY, RESERVED_NAMES, _check_name, _jsonable

if TYPE_CHECKING:
    import xarray as xr

    from actstore.store.core._handle import CacheHandle

__all__ = ["read_dataset", "write_dataset", "write_derived"]


def write_derived(
    cache: CacheHandle,
    prompt_set: str,
    name: str,
    data: Any,
    *,
    dims: tuple[str, ...],
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Implementation of :meth:`Cache.write_derived`."""
    import dask.array as da

    group = cache.group(prompt_set)
    spec = cache.spec(prompt_set)
    _check_name("derived variable", name)
    _check_derived_name(group, prompt_set, name, spec.hooks)
    sizes = {
        "prompt": spec.n_prompts,
        "layer": len(spec.layers),
        "token": spec.n_tokens_max,
        "d_model": spec.d_model,
        "span": int(group["span"].shape[0]),
    }
    dims = tuple(dims)
    unknown = [d for d in dims if d not in sizes]
    if unknown or len(set(dims)) != len(dims):
        raise InvalidArgumentError(
            f"expected distinct dims among {sorted(sizes)}, got {dims}; name the dims of the data"
        )
    shape = tuple(sizes[d] for d in dims)
    if hasattr(data, "dims") and hasattr(data, "data"):  # an xarray.DataArray: use its dim names
        if set(data.dims) != set(dims):
            raise InvalidArgumentError(f"expected a DataArray with dims {dims}, got {data.dims}")
        data = data.transpose(*dims).data
    if getattr(data, "shape", None) != shape:
        raise InvalidArgumentError(
            f"expected {name} of shape {shape} for dims {dims}, got {getattr(data, 'shape', None)}"
        )
    dtype = np.dtype(data.dtype)
    if not is_number_dtype(dtype):  # bfloat16 is stored as such (decoded on open)
        raise InvalidArgumentError(f"expected a numeric or bool {name}, got dtype {dtype}")
    block = int(cache.set_info(prompt_set)["layout"]["read_prompts"])
    chunks = tuple(
        block if d == "prompt" else (1 if d == "layer" else s) for d, s in zip(dims, shape)
    )
    chunks = tuple(max(1, c) for c in chunks)
    arr = require_array(
        group,
        name,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        dims=dims,
        compressors=meta_compressors(),
        fill_value=0,
        attributes={
            ATTR_KEY: {"kind": "derived", "lineage": _jsonable(dict(attrs or {}), "attrs")}
        },
        overwrite=True,
    )
    if isinstance(data, da.Array):
        da.store(data.rechunk(chunks), arr, lock=False)
    else:
        arr[...] = np.asarray(data)


def _check_derived_name(
    group: zarr.Group, prompt_set: str, name: str, hooks: tuple[str, ...]
) -> None:
    """Refuse a derived name that would replace (or pass for) stored data."""
    from actstore.store.format._schema import RESERVED_PREFIXES

    what = None
    if name in hooks:
        what = "the name of its activations"
    elif name in RESERVED_NAMES:
        what = "a name of its metadata"
    elif name.startswith(tuple(p for p in RESERVED_PREFIXES if p != "pred_")):
        what = "a name reserved for activations"
    elif name in group:
        node = group[name]
        meta = node.attrs.get(ATTR_KEY) if isinstance(node, zarr.Array) else None
        if not (isinstance(meta, Mapping) and meta.get("kind") == "derived"):
            one_d = isinstance(node, zarr.Array) and len(node.shape) == 1
            what = "the name of its label" if one_d else "the name of its stored data"
    if what is not None:
        raise InvalidArgumentError(
            f"expected a new or derived variable name in prompt set {prompt_set!r}, got "
            f"{name!r}, {what}; pick another name (predictions are named pred_<probe>)"
        )


def _check_group_path(cache: CacheHandle, group_path: str) -> str:
    path = group_path.strip("/")
    parts = path.split("/")
    if not path or any(not p or p.startswith((".", "_")) for p in parts):
        raise InvalidArgumentError(f"expected a group path like 'probes/value', got {group_path!r}")
    if parts[0] in cache.prompt_sets and len(parts) == 1:
        raise InvalidArgumentError(
            f"expected a group path that is not a prompt set, got {group_path!r}; use "
            "write_derived to add a variable to a prompt set"
        )
    return path


def write_dataset(cache: CacheHandle, group_path: str, ds: xr.Dataset) -> None:
    """Implementation of :meth:`Cache.write_dataset` (replaces the group if it exists)."""
    path = _check_group_path(cache, group_path)
    _jsonable(dict(ds.attrs), "dataset attrs")
    for var in ds.variables.values():
        if var.dtype == object and not all(isinstance(v, str) for v in np.ravel(var.values)):
            raise InvalidArgumentError(
                f"expected numeric or str variables, got objects in {var.name!r}; no pickle"
            )
    ds = ds.copy()
    encoding = {}
    for name, var in ds.variables.items():
        var.encoding = {}
        # crc32c on every chunk, as for the rest of the cache, so `actstore verify` checks these too
        encoding[name] = {"compressors": meta_compressors()}
    # every chunk written, also one equal to the fill value (an all-zero flag array): `verify`
    # treats an absent metadata chunk as lost, so none may be absent by design
    ds.to_zarr(
        cache.store,
        group=path,
        mode="w",
        consolidated=False,
        zarr_format=3,
        encoding=encoding,
        write_empty_chunks=True,
    )


def read_dataset(
    cache: CacheHandle, group_path: str, *, decode_bfloat16: bool = True
) -> xr.Dataset:
    """Implementation of :meth:`Cache.read_dataset` (loaded into memory)."""
    import xarray as xr

    path = _check_group_path(cache, group_path)
    cache.check_group_readable(path)  # damaged metadata found at open is named, not tripped over
    try:
        zarr.open_group(store=cache.store, path=path, mode="r")
    except (FileNotFoundError, ValueError) as exc:
        raise UnknownNameError(
            f"expected an existing group of {cache.url!r}, got {group_path!r}"
        ) from exc
    ds = xr.open_zarr(
        cache.store,
        group=path,
        consolidated=False,
        chunks=None,
        zarr_format=3,
        use_zarr_fill_value_as_mask=False,
    )
    ds = strings_as_object(ds.load())
    return decode(ds) if decode_bfloat16 else ds
