"""actstore.store: the Zarr v3 activation cache.

One cache is one Zarr v3 group with one subgroup per prompt set; activations have dims
``(prompt, layer, token, d_model)``. The schema: docs/reference/store-format.md; how this
package is built (``format`` <- ``core`` <- ``ops``): docs/explanation/store-internals.md.

Writing from another extractor (nnsight, a vLLM hook, ...): :func:`create_cache`, then
:meth:`Cache.prompt_set_writer` with a :class:`PromptSetSpec` and :class:`PromptSetMetadata`,
then :meth:`PromptSetWriter.write_block` for each block. Reading: :func:`open` (xarray) or
:func:`open_cache` (the :class:`Cache` handle).

Each name is imported on first use (PEP 562 ``__getattr__``), so ``import actstore.store`` (and
any of its submodules) does not load zarr or xarray until a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and the API reference
    from actstore.store.core._cache import Cache
    from actstore.store.core._checked import open_store
    from actstore.store.core._decode import decode_bfloat16
    from actstore.store.core._entry import create_cache, open, open_cache
    from actstore.store.core._positions import materialize_positions, stored_positions
    from actstore.store.core._writer import PromptSetWriter, numpy_dtype
    from actstore.store.format._dtype import BFLOAT16, BFloat16, register_bfloat16
    from actstore.store.format._layout import Layout, choose_layout
    from actstore.store.format._schema import (
        ACT_DIMS,
        PROBES_GROUP,
        SCHEMA_VERSION,
        PromptSetMetadata,
        PromptSetSpec,
        derived_name,
    )
    from actstore.store.ops._copy import CopyReport, copy_cache
    from actstore.store.ops._export import ExportReport, export_cache
    from actstore.store.ops._info import cache_info, format_info
    from actstore.store.ops._repair import RepairReport, format_repair, repair_cache
    from actstore.store.ops._verify import Problem, VerifyReport, format_report, verify_cache

#: Public name -> the module defining it, imported on first access.
_WHERE = {
    "ACT_DIMS": "actstore.store.format._schema",
    "BFLOAT16": "actstore.store.format._dtype",
    "BFloat16": "actstore.store.format._dtype",
    "Cache": "actstore.store.core._cache",
    "CopyReport": "actstore.store.ops._copy",
    "ExportReport": "actstore.store.ops._export",
    "Layout": "actstore.store.format._layout",
    "PROBES_GROUP": "actstore.store.format._schema",
    "Problem": "actstore.store.ops._verify",
    "PromptSetMetadata": "actstore.store.format._schema",
    "PromptSetSpec": "actstore.store.format._schema",
    "PromptSetWriter": "actstore.store.core._writer",
    "RepairReport": "actstore.store.ops._repair",
    "SCHEMA_VERSION": "actstore.store.format._schema",
    "VerifyReport": "actstore.store.ops._verify",
    "cache_info": "actstore.store.ops._info",
    "choose_layout": "actstore.store.format._layout",
    "copy_cache": "actstore.store.ops._copy",
    "create_cache": "actstore.store.core._entry",
    "decode_bfloat16": "actstore.store.core._decode",
    "derived_name": "actstore.store.format._schema",
    "export_cache": "actstore.store.ops._export",
    "format_info": "actstore.store.ops._info",
    "format_repair": "actstore.store.ops._repair",
    "format_report": "actstore.store.ops._verify",
    "materialize_positions": "actstore.store.core._positions",
    "numpy_dtype": "actstore.store.core._writer",
    "open": "actstore.store.core._entry",
    "open_cache": "actstore.store.core._entry",
    "open_store": "actstore.store.core._checked",
    "register_bfloat16": "actstore.store.format._dtype",
    "repair_cache": "actstore.store.ops._repair",
    "stored_positions": "actstore.store.core._positions",
    "verify_cache": "actstore.store.ops._verify",
}

__all__ = [
    "ACT_DIMS",
    "BFLOAT16",
    "PROBES_GROUP",
    "SCHEMA_VERSION",
    "BFloat16",
    "Cache",
    "CopyReport",
    "ExportReport",
    "Layout",
    "Problem",
    "PromptSetMetadata",
    "PromptSetSpec",
    "PromptSetWriter",
    "RepairReport",
    "VerifyReport",
    "cache_info",
    "choose_layout",
    "copy_cache",
    "create_cache",
    "decode_bfloat16",
    "derived_name",
    "export_cache",
    "format_info",
    "format_repair",
    "format_report",
    "materialize_positions",
    "numpy_dtype",
    "open",
    "open_cache",
    "open_store",
    "register_bfloat16",
    "repair_cache",
    "stored_positions",
    "verify_cache",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
