"""actstore: extract per-token residual activations once, analyse them forever.

Importing actstore is light: it never imports torch, transformers, transformer_lens or matplotlib.
"""

from __future__ import annotations

from actstore._version import __version__
from actstore.errors import ActstoreError

__all__ = ["ActstoreError", "__version__"]
