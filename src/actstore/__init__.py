"""actstore: extract per-token residual activations once, analyse them forever.

Importing actstore is light: it never imports torch, transformers, transformer_lens or matplotlib.
It registers the ``bfloat16`` Zarr v3 data type, so plain ``xarray.open_zarr`` / ``zarr.open`` read
bfloat16 caches once ``actstore`` is imported; :func:`decode_bfloat16` turns what they return into
float32 lazily, as :func:`open` does by default.
"""

from __future__ import annotations

from actstore._progress import show_progress
from actstore._version import __version__
from actstore.errors import ActstoreError
from actstore.store import decode_bfloat16, open, register_bfloat16

register_bfloat16()

__all__ = ["ActstoreError", "__version__", "decode_bfloat16", "open", "show_progress"]
