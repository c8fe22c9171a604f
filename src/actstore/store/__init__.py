"""actstore.store: the Zarr v3 activation cache.

One cache is one Zarr v3 group with one subgroup per prompt set; activations have dims
``(prompt, layer, token, d_model)``. The schema: docs/reference/store-format.md; how this
package is built (``format`` <- ``core`` <- ``ops``): docs/explanation/store-internals.md.

Writing from another extractor (nnsight, a vLLM hook, ...): :func:`create_cache`, then
:meth:`Cache.prompt_set_writer` with a :class:`PromptSetSpec` and :class:`PromptSetMetadata`,
then :meth:`PromptSetWriter.write_block` for each block. Reading: :func:`open` (xarray) or
:func:`open_cache` (the :class:`Cache` handle).
"""

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
