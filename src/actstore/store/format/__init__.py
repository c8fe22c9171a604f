"""actstore.store.format: what a cache is on disk, and the checks untrusted bytes get first.

The bottom layer of :mod:`actstore.store` (it imports no other part of it): the schema and its
names (``_schema``), the ``bfloat16`` data type (``_dtype``), codecs and layout choices, the
storage backends (``_storage``: directories, fsspec URLs, zip files), the one adapter over
zarr's internals (``_zarr``), the safety scan of untrusted metadata (``_safety``,
``_scanner``, ``_safety_limits``, ``_safety_spec``) and the small on-disk protocols every
writer and checker shares: completion markers (``_markers``), temporary ``.partial`` files
(``_partial``), array walks (``_walk``) and a full disk (``_enospc``).

The names below are for actstore's own packages (extractors, prompts, analysis); they are not
part of the public API (that is :mod:`actstore.store`) and may change without notice.

Each name is imported on first use (PEP 562 ``__getattr__``): the bfloat16-free readers (e.g.
``_shardread``) load without zarr.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actstore.store.format._codecs import CODEC_CHOICES, DEFAULT_CODEC, parse_codec
    from actstore.store.format._dtype import is_bfloat16, is_number_dtype
    from actstore.store.format._enospc import disk_full_as_error, is_disk_full
    from actstore.store.format._safety import damaged_error_message, scan_store
    from actstore.store.format._schema import _check_name as check_name
    from actstore.store.format._schema import derived_name, reserved_label_problem
    from actstore.store.format._shardread import Unsupported as UnsupportedArray
    from actstore.store.format._shardread import check_array as check_local_array
    from actstore.store.format._shardread import read_array as read_local_array
    from actstore.store.format._shardread import read_json as read_local_json
    from actstore.store.format._storage import is_local, make_store, normalize_url, zip_location

#: Name -> (module of this package, its name there), imported on first access.
_WHERE = {
    "CODEC_CHOICES": ("_codecs", "CODEC_CHOICES"),
    "DEFAULT_CODEC": ("_codecs", "DEFAULT_CODEC"),
    "check_name": ("_schema", "_check_name"),
    "damaged_error_message": ("_safety", "damaged_error_message"),
    "derived_name": ("_schema", "derived_name"),
    "disk_full_as_error": ("_enospc", "disk_full_as_error"),
    "is_bfloat16": ("_dtype", "is_bfloat16"),
    "is_disk_full": ("_enospc", "is_disk_full"),
    "is_local": ("_storage", "is_local"),
    "is_number_dtype": ("_dtype", "is_number_dtype"),
    "make_store": ("_storage", "make_store"),
    "normalize_url": ("_storage", "normalize_url"),
    "parse_codec": ("_codecs", "parse_codec"),
    "read_local_array": ("_shardread", "read_array"),
    "check_local_array": ("_shardread", "check_array"),
    "read_local_json": ("_shardread", "read_json"),
    "UnsupportedArray": ("_shardread", "Unsupported"),
    "reserved_label_problem": ("_schema", "reserved_label_problem"),
    "scan_store": ("_safety", "scan_store"),
    "zip_location": ("_storage", "zip_location"),
}

__all__ = [
    "CODEC_CHOICES",
    "DEFAULT_CODEC",
    "UnsupportedArray",
    "check_local_array",
    "check_name",
    "damaged_error_message",
    "derived_name",
    "disk_full_as_error",
    "is_bfloat16",
    "is_disk_full",
    "is_local",
    "is_number_dtype",
    "make_store",
    "normalize_url",
    "parse_codec",
    "read_local_array",
    "read_local_json",
    "reserved_label_problem",
    "scan_store",
    "zip_location",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where[0]}"), where[1])
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
