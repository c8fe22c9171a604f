"""What the data-path modules need from an open cache: :class:`CacheHandle`.

:class:`~actstore.store.core._cache.Cache` is a facade whose methods delegate to the writer,
open, derived, guard and consolidation modules. Those modules take the open cache as an argument;
annotating it with this Protocol instead of ``Cache`` keeps the dependency one way (``_cache``
imports them, never the reverse, not even for type checkers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import zarr

    from actstore.store.format._safety import ScanResult
    from actstore.store.format._schema import PromptSetSpec

__all__ = ["CacheHandle"]


class CacheHandle(Protocol):
    """An open cache as the data-path modules use it (:class:`actstore.store.Cache` is one)."""

    url: str
    store: Any
    mode: str
    scan: ScanResult

    @property
    def root(self) -> zarr.Group: ...

    @property
    def attrs(self) -> dict[str, Any]: ...

    @property
    def prompt_sets(self) -> list[str]: ...

    def group(self, prompt_set: str) -> zarr.Group: ...

    def set_info(self, prompt_set: str) -> dict[str, Any]: ...

    def spec(self, prompt_set: str) -> PromptSetSpec: ...

    def check_readable(self, prompt_set: str) -> None: ...

    def check_group_readable(self, path: str) -> None: ...

    def check_writable(self) -> None: ...

    def missing_blocks(self, prompt_set: str) -> list[int]: ...
