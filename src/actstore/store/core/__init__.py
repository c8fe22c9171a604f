"""actstore.store.core: the data path, from :func:`create_cache` to a lazy xarray Dataset.

The middle layer of :mod:`actstore.store` (it imports :mod:`actstore.store.format`, never
:mod:`actstore.store.ops`): opening and creating caches (``_entry``, the checked open in
``_checked``), the :class:`Cache` handle (``_cache``), the prompt-set writer (``_writer``, its
fast shard encoder ``_shardio`` and array helpers ``_arrays``), consolidated metadata
(``_metastore`` reads it, ``_consolidated`` keeps it true), lazy xarray reads (``_open``,
``_decode``, guarded by ``_guard``), derived variables (``_derived``), materialised positions
(``_positions``) and token selection for loaders and exports (``_tokens``).

Inside the layer the modules import one way: ``_cache`` (the handle) imports the modules that
implement its methods, ``_entry`` imports ``_cache``; none of them imports either back.

The names below that :mod:`actstore.store` does not re-export are for actstore's own packages
and may change without notice.
"""

from actstore.store.core._cache import Cache
from actstore.store.core._checked import open_store
from actstore.store.core._derived import _check_derived_name as check_derived_name
from actstore.store.core._entry import create_cache, open, open_cache
from actstore.store.core._guard import GuardedArray, damaged_shards
from actstore.store.core._positions import (
    materialize_positions,
    parse_position_list,
    refuse_if_empty,
    stored_positions,
)
from actstore.store.core._shardio import set_write_threads, write_threads
from actstore.store.core._tokens import DEFAULT_BUFFER_BYTES, TokenPlan, select_tokens

__all__ = [
    "DEFAULT_BUFFER_BYTES",
    "Cache",
    "GuardedArray",
    "TokenPlan",
    "check_derived_name",
    "create_cache",
    "damaged_shards",
    "materialize_positions",
    "open",
    "open_cache",
    "open_store",
    "parse_position_list",
    "refuse_if_empty",
    "select_tokens",
    "set_write_threads",
    "stored_positions",
    "write_threads",
]
