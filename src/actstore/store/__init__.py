"""actstore.store: the Zarr v3 activation cache.

One cache is one Zarr v3 group with one subgroup per prompt set; activations have dims
``(prompt, layer, token, d_model)``. The schema: docs/reference/store-format.md.
"""

from actstore.store._cache import Cache, create_cache, open_cache
from actstore.store._copy import CopyReport, copy_cache
from actstore.store._decode import decode_bfloat16
from actstore.store._dtype import BFLOAT16, BFloat16, register_bfloat16
from actstore.store._export import ExportReport, export_cache
from actstore.store._info import cache_info
from actstore.store._layout import Layout, choose_layout
from actstore.store._open import open
from actstore.store._positions import materialize_positions
from actstore.store._repair import RepairReport, repair_cache
from actstore.store._schema import (
    ACT_DIMS,
    PROBES_GROUP,
    SCHEMA_VERSION,
    PromptSetMetadata,
    PromptSetSpec,
)
from actstore.store._verify import Problem, VerifyReport, verify_cache
from actstore.store._writer import PromptSetWriter, numpy_dtype

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
    "export_cache",
    "materialize_positions",
    "numpy_dtype",
    "open",
    "open_cache",
    "register_bfloat16",
    "repair_cache",
    "verify_cache",
]
