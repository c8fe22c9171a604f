"""The ``bfloat16`` Zarr v3 extension data type, backed by :mod:`ml_dtypes`.

zarr 3.1 has no bfloat16. This module adds one through zarr's data-type registry: arrays are stored
with ``"data_type": "bfloat16"`` (the name of the zarr-extensions registry), two bytes per value,
little-endian through the ``bytes`` codec, so the bits written are exactly the bits read back.
In memory the values are :data:`ml_dtypes.bfloat16` numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, TypeGuard

import ml_dtypes
import numpy as np
from zarr.dtype import DataTypeValidationError, ZDType, data_type_registry

from actstore.store.format._zarr import (
    HasEndianness,
    HasItemSize,
    check_json_float_v2,
    check_json_float_v3,
    float_from_json_v2,
    float_from_json_v3,
    float_to_json_v3,
)

__all__ = ["BFLOAT16", "BFloat16", "is_bfloat16", "is_number_dtype", "register_bfloat16"]

BFLOAT16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
"""The numpy dtype of bfloat16 values in memory (``ml_dtypes.bfloat16``)."""


def is_bfloat16(dtype: Any) -> bool:
    """Whether *dtype* is :data:`ml_dtypes.bfloat16`."""
    try:
        return bool(np.dtype(dtype) == BFLOAT16)
    except TypeError:
        return False


def is_number_dtype(dtype: Any) -> bool:
    """Bool, integer or floating, bfloat16 included (numpy gives bfloat16 the kind ``"V"``)."""
    return np.dtype(dtype).kind in "biuf" or is_bfloat16(dtype)


@dataclass(frozen=True, kw_only=True)
class BFloat16(ZDType[Any, Any], HasEndianness, HasItemSize):
    """Zarr v3 data type ``"bfloat16"``: 1 sign, 8 exponent, 7 mantissa bits, 2 bytes per value.

    Only little-endian storage is supported (what every machine that computes in bfloat16 uses).
    """

    dtype_cls: ClassVar[type[Any]] = type(BFLOAT16)
    _zarr_v3_name: ClassVar[Literal["bfloat16"]] = "bfloat16"

    @classmethod
    def from_native_dtype(cls, dtype: Any) -> Self:
        if cls._check_native_dtype(dtype):
            return cls(endianness="little")
        raise DataTypeValidationError(f"expected the ml_dtypes bfloat16 dtype, got {dtype}")

    def to_native_dtype(self) -> Any:
        if self.endianness == "big":
            raise DataTypeValidationError(
                "expected little-endian bfloat16, got big-endian; rewrite the array little-endian"
            )
        return BFLOAT16

    @classmethod
    def _check_json_v2(cls, data: Any) -> bool:
        return False

    @classmethod
    def _from_json_v2(cls, data: Any) -> Self:
        raise DataTypeValidationError("bfloat16 exists only in Zarr format 3")

    @classmethod
    def _check_json_v3(cls, data: Any) -> TypeGuard[str]:
        return data == cls._zarr_v3_name

    @classmethod
    def _from_json_v3(cls, data: Any) -> Self:
        if cls._check_json_v3(data):
            return cls()
        raise DataTypeValidationError(f"expected {cls._zarr_v3_name!r}, got {data!r}")

    def to_json(self, zarr_format: Any) -> Any:
        if zarr_format == 3:
            return self._zarr_v3_name
        raise ValueError(f"bfloat16 exists only in Zarr format 3, got zarr_format={zarr_format}")

    def _check_scalar(self, data: object) -> bool:
        return isinstance(data, float | int | np.floating | np.integer | str | BFLOAT16.type)

    def cast_scalar(self, data: object) -> Any:
        if self._check_scalar(data):
            return BFLOAT16.type(float(data))  # type: ignore[arg-type]
        raise TypeError(f"expected a float for a bfloat16 scalar, got {data!r}")

    def default_scalar(self) -> Any:
        return BFLOAT16.type(0.0)

    def from_json_scalar(self, data: Any, *, zarr_format: Any) -> Any:
        if zarr_format == 3 and check_json_float_v3(data):
            return BFLOAT16.type(float_from_json_v3(data))
        if zarr_format == 2 and check_json_float_v2(data):
            return BFLOAT16.type(float_from_json_v2(data))
        raise TypeError(f"expected a JSON float for a bfloat16 fill value, got {data!r}")

    def to_json_scalar(self, data: object, *, zarr_format: Any) -> Any:
        return float_to_json_v3(np.float64(np.float32(self.cast_scalar(data))))

    @property
    def item_size(self) -> int:
        return 2


def register_bfloat16() -> None:
    """Register :class:`BFloat16` with zarr (idempotent; done on ``import actstore``)."""
    if data_type_registry.contents.get(BFloat16._zarr_v3_name) is not BFloat16:
        data_type_registry.register(BFloat16._zarr_v3_name, BFloat16)


# Importing this module registers the type: ``import actstore`` imports it once zarr is imported.
register_bfloat16()
