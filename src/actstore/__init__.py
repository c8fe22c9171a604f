"""actstore: extract per-token residual activations once, analyse them forever.

Importing actstore is light: it never imports torch, transformers, transformer_lens or matplotlib,
nor (until a name that needs them is used) zarr, xarray or dask. It registers the ``bfloat16``
Zarr v3 data type as soon as zarr is imported (now, if it already is), so plain
``xarray.open_zarr`` / ``zarr.open`` read bfloat16 caches once ``actstore`` is imported;
:func:`decode_bfloat16` turns what they return into float32 lazily, as :func:`open` does by default.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from actstore._progress import show_progress
from actstore._version import __version__
from actstore.errors import ActstoreError

if TYPE_CHECKING:
    from actstore.store import decode_bfloat16, open, register_bfloat16  # noqa: F401

__all__ = ["ActstoreError", "__version__", "decode_bfloat16", "open", "show_progress"]

_LAZY = {"decode_bfloat16", "open", "register_bfloat16"}
_DTYPE_MODULE = "actstore.store.format._dtype"  # registers bfloat16 when imported


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("actstore.store"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)


class _RegisterAfter:
    """Runs zarr's own loader, then registers ``bfloat16`` (zarr is complete by then)."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        if _DTYPE_MODULE not in sys.modules:  # else it is importing zarr and registers itself
            importlib.import_module(_DTYPE_MODULE)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class _WhenZarrImports:
    """A one-shot post-import hook: ``bfloat16`` is registered the moment ``zarr`` is imported,
    so ``import actstore`` does not pay for zarr (~0.1 s) when nothing reads through it."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "zarr":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:  # the finders the import would have asked next
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisterAfter(spec.loader)
                return spec
        return None


if "zarr" in sys.modules:
    importlib.import_module(_DTYPE_MODULE)
elif not any(isinstance(f, _WhenZarrImports) for f in sys.meta_path):
    sys.meta_path.insert(0, _WhenZarrImports())
