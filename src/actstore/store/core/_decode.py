"""bfloat16 -> float32 decoding for xarray objects: :func:`decode_bfloat16`.

xarray and numpy reject :data:`ml_dtypes.bfloat16` in reductions (``mean``, ``max``, ``std``, ...:
``TypeError: dtype argument must be a NumPy dtype``). :func:`actstore.open` therefore decodes
bfloat16 variables to float32 lazily, the way xarray decodes CF-encoded variables: the values are
converted when read, the stored dtype stays in ``variable.encoding["dtype"]``. Every bfloat16
value is exactly representable in float32, so decoding loses nothing; writing a decoded variable
back with ``to_zarr`` casts it to bfloat16 again (xarray honours ``encoding["dtype"]``).

This module is the same decoding for objects opened another way (plain ``xr.open_zarr``).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from actstore.errors import InvalidArgumentError
from actstore.store.format._dtype import BFLOAT16, is_bfloat16

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "DECODED_DTYPE",
    "decode_bfloat16",
    "decode_variable",
    "is_bfloat16",
    "strings_as_object",
]

#: What bfloat16 decodes to: the smallest numpy float that holds every bfloat16 value exactly.
DECODED_DTYPE = np.dtype(np.float32)

T = TypeVar("T")


def _astype(block: Any, dtype: np.dtype[Any]) -> Any:
    return np.asarray(block).astype(dtype)


def _lazy_cast(data: Any) -> Any:
    """*data* (a ``Variable._data``) cast to float32 without reading it: dask stays dask, xarray's
    lazily indexed backend arrays stay lazy (only what is indexed is read and converted)."""
    func = partial(_astype, dtype=DECODED_DTYPE)
    try:
        from xarray.coding.common import lazy_elemwise_func
    except ImportError:  # pragma: no cover - xarray < 2025.3 keeps it in coding.variables
        try:
            from xarray.coding.variables import lazy_elemwise_func
        except ImportError:
            lazy_elemwise_func = None
    if lazy_elemwise_func is not None:
        return lazy_elemwise_func(data, func, DECODED_DTYPE)
    import dask.array as da  # pragma: no cover

    if isinstance(data, da.Array):  # pragma: no cover
        return data.astype(DECODED_DTYPE)
    return func(data)  # pragma: no cover - without xarray's lazy wrapper: read now


def decode_variable(var: Any) -> Any:
    """One :class:`xarray.Variable`: decoded copy if it holds bfloat16, else *var* itself."""
    import xarray as xr

    if not is_bfloat16(var.dtype):
        return var
    encoding = dict(var.encoding)
    encoding["dtype"] = BFLOAT16
    if isinstance(var, xr.IndexVariable):  # index coordinates live in memory
        return xr.IndexVariable(var.dims, var.values.astype(DECODED_DTYPE), var.attrs, encoding)
    return xr.Variable(var.dims, _lazy_cast(var._data), var.attrs, encoding, fastpath=True)


def _decode_dataset(ds: Any) -> Any:
    changed = {
        name: new for name, var in ds.variables.items() if (new := decode_variable(var)) is not var
    }
    if not changed:
        return ds
    indexes = {k: v for k, v in changed.items() if k in ds.indexes}
    plain = {k: v for k, v in changed.items() if k not in ds.indexes}
    out = ds.copy()
    if indexes:
        out = out.assign_coords(indexes)
    for name, var in plain.items():
        if name in ds.coords:
            out = out.assign_coords({name: var})
        else:
            out[name] = var
    return out


def decode_bfloat16(obj: T) -> T:
    """Decode every bfloat16 variable of *obj* to float32, lazily (nothing is read).

    :func:`actstore.open` does this by default; use this for a cache opened with plain xarray::

        import actstore, xarray as xr
        ds = actstore.decode_bfloat16(xr.open_zarr("cache.zarr", group="physics",
                                                  consolidated=False))

    Parameters
    ----------
    obj : xarray.Dataset, xarray.DataArray, xarray.DataTree or xarray.Variable
        Dask-backed, lazily indexed or in-memory. Variables of other dtypes are left as they are.

    Returns
    -------
    Same type as *obj*
        bfloat16 variables (data variables and coordinates) become float32 with the same dims;
        their ``encoding["dtype"]`` is ``ml_dtypes.bfloat16``, the stored dtype. Dask arrays stay
        dask arrays with the same chunks; arrays not yet read stay unread. Values are exact:
        every bfloat16 value is a float32 value.

    Raises
    ------
    InvalidArgumentError
        *obj* is not one of the xarray types above.
    """
    import xarray as xr

    if isinstance(obj, xr.DataTree):
        nodes = {node.path: _decode_dataset(node.to_dataset(inherit=False)) for node in obj.subtree}
        out = xr.DataTree.from_dict(nodes, name=obj.name)
        return out  # type: ignore[return-value]
    if isinstance(obj, xr.Dataset):
        return _decode_dataset(obj)  # type: ignore[no-any-return]
    if isinstance(obj, xr.DataArray):
        # the round trip xarray itself uses for DataArray methods (keeps name, attrs, coords)
        return obj._from_temp_dataset(_decode_dataset(obj._to_temp_dataset()))  # type: ignore
    if isinstance(obj, xr.Variable):
        return decode_variable(obj)  # type: ignore[no-any-return]
    raise InvalidArgumentError(
        f"expected an xarray Dataset, DataArray, DataTree or Variable, got "
        f"{type(obj).__name__}; pass what xr.open_zarr or actstore.open returned"
    )


def strings_as_object(ds: xr.Dataset) -> xr.Dataset:
    """numpy StringDType (what zarr returns) -> object arrays of str, which every library reads."""
    for name, var in list(ds.variables.items()):
        if var.dtype.kind == "T":
            if name in ds.indexes:
                ds = ds.assign_coords({name: (var.dims, var.values.astype(object), var.attrs)})
            else:
                ds[name] = var.astype(object)
    return ds
