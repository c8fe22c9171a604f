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
"""

from actstore.store.format._codecs import CODEC_CHOICES, DEFAULT_CODEC, parse_codec
from actstore.store.format._dtype import is_bfloat16, is_number_dtype
from actstore.store.format._enospc import disk_full_as_error, is_disk_full
from actstore.store.format._safety import damaged_error_message, scan_store
from actstore.store.format._schema import _check_name as check_name
from actstore.store.format._schema import derived_name, reserved_label_problem
from actstore.store.format._storage import is_local, make_store, normalize_url, zip_location

__all__ = [
    "CODEC_CHOICES",
    "DEFAULT_CODEC",
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
    "reserved_label_problem",
    "scan_store",
    "zip_location",
]
