"""actstore.store.ops: whole-cache operations built on the data path.

The top layer of :mod:`actstore.store` (nothing in :mod:`actstore.store.format` or
:mod:`actstore.store.core` imports it): ``copy`` (``_copy``: to a directory, URL or zip, a subset
of layers, prompts or sets), ``info`` (``_info``), ``export`` to Hugging Face datasets or
``.npy`` (``_export``), ``verify`` (``_verify``: every chunk's checksum, markers, consolidated
copies) and ``repair`` (``_repair``). :mod:`actstore.store` re-exports the public ones;
``Progress`` (the export progress bar) is for actstore's own loaders.
"""

from actstore.store.ops._copy import CopyReport, copy_cache
from actstore.store.ops._export import ExportReport, Progress, export_cache
from actstore.store.ops._info import cache_info, format_info
from actstore.store.ops._repair import RepairReport, format_repair, repair_cache
from actstore.store.ops._verify import Problem, VerifyReport, format_report, verify_cache

__all__ = [
    "CopyReport",
    "ExportReport",
    "Problem",
    "Progress",
    "RepairReport",
    "VerifyReport",
    "cache_info",
    "copy_cache",
    "export_cache",
    "format_info",
    "format_repair",
    "format_report",
    "repair_cache",
    "verify_cache",
]
