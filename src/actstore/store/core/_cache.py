"""The open cache: :class:`Cache` (made by :func:`create_cache` and :func:`open_cache`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import zarr

from actstore._locations import located
from actstore.errors import CorruptCacheError, ReadOnlyError, UnknownNameError
from actstore.store.core._consolidated import consolidated_writer, metadata_change, reconsolidate
from actstore.store.core._derived import read_dataset as _read_dataset
from actstore.store.core._derived import write_dataset as _write_dataset
from actstore.store.core._derived import write_derived as _write_derived
from actstore.store.core._open import open_prompt_set, open_tree
from actstore.store.format._layers import layer_list
from actstore.store.format._markers import missing_from_listing
from actstore.store.format._safety import damaged_error_message
from actstore.store.format._safety_limits import ScanResult
from actstore.store.format._schema import (
    ATTR_KEY,
    PROBES_GROUP,
    PromptSetMetadata,
    PromptSetSpec,
    spec_from_json,
)

if TYPE_CHECKING:
    import xarray as xr

    from actstore.store.core._writer import PromptSetWriter

__all__ = ["Cache"]


class Cache:
    """An open activation cache (one Zarr v3 group; one subgroup per prompt set).

    Attributes
    ----------
    url : str
        Where the cache lives (a path or an fsspec URL).
    mode : str
        ``"r"`` or ``"r+"``.
    """

    def __init__(
        self,
        *,
        url: str,
        store: Any,
        root: zarr.Group,
        mode: str,
        storage_options: dict[str, Any] | None,
        scan: ScanResult | None = None,
    ) -> None:
        self.url = url
        #: What the metadata scan at open found (damaged keys); see
        #: :mod:`actstore.store.format._safety`.
        self.scan = scan or ScanResult()
        self.store = store
        self.mode = mode
        self.storage_options = storage_options
        self._root = root

    def __repr__(self) -> str:
        return f"<actstore.Cache {self.url!r} mode={self.mode!r} prompt_sets={self.prompt_sets}>"

    @property
    def root(self) -> zarr.Group:
        """The root zarr group."""
        return self._root

    @property
    def attrs(self) -> dict[str, Any]:
        """The cache's own root attributes (schema version, creation time, versions, provenance)."""
        return dict(self._root.attrs.get(ATTR_KEY, {}))

    @property
    def prompt_sets(self) -> list[str]:
        """Names of the prompt sets in the cache, sorted."""
        names = []
        for name, group in self._root.groups():
            info = group.attrs.get(ATTR_KEY)
            if name != PROBES_GROUP and isinstance(info, Mapping) and "spec" in info:
                names.append(name)
        return sorted(names)

    def check_writable(self) -> None:
        """Raise :class:`ReadOnlyError` unless the cache was opened with ``mode="r+"``."""
        if self.mode != "r+":
            raise ReadOnlyError(
                f"expected a cache opened for writing, got {self.url!r} opened read-only; use "
                "open_cache(url, mode='r+') (or create_cache) to write"
            )

    def group(self, prompt_set: str) -> zarr.Group:
        """The zarr group of *prompt_set* (:class:`UnknownNameError` when it does not exist)."""
        if prompt_set not in self.prompt_sets:
            raise UnknownNameError(
                f"expected a prompt set of {self.url!r} (one of {self.prompt_sets}), got "
                f"{prompt_set!r}; list them with `actstore info`"
            )
        return self._root[prompt_set]  # type: ignore[return-value]

    def set_info(self, prompt_set: str) -> dict[str, Any]:
        """The prompt set's ``attrs["actstore"]``: spec, layout, ready flag.

        Raises :class:`CorruptCacheError` when the open-time scan found its spec unreadable or
        contradicting its arrays.
        """
        group = self.group(prompt_set)
        if prompt_set in self.scan.damaged_sets:
            raise CorruptCacheError(
                damaged_error_message(
                    self.url, f"{prompt_set}/zarr.json", self.scan.damaged_sets[prompt_set]
                )
            )
        return dict(group.attrs[ATTR_KEY])

    def check_readable(self, prompt_set: str) -> None:
        """Raise :class:`CorruptCacheError` naming the first damaged metadata of *prompt_set*."""
        self.set_info(prompt_set)
        self.check_group_readable(prompt_set)

    def check_group_readable(self, path: str) -> None:
        """Raise :class:`CorruptCacheError` naming the first damaged metadata under group *path*."""
        for key, problem in sorted(self.scan.damaged_under(path).items()):
            raise CorruptCacheError(damaged_error_message(self.url, key, problem))

    def spec(self, prompt_set: str) -> PromptSetSpec:
        """The stored :class:`PromptSetSpec` of *prompt_set* (with its resolved ``block_size``)."""
        return spec_from_json(self.set_info(prompt_set)["spec"])

    def prompt_set_writer(
        self,
        name: str,
        spec: PromptSetSpec | None = None,
        metadata: PromptSetMetadata | None = None,
    ) -> PromptSetWriter:
        """Create prompt set *name* (needs *spec* and *metadata*) or reopen it to resume.

        A *spec* that differs from the stored one raises :class:`FingerprintMismatchError` naming
        the field; nothing is written then.
        """
        self.check_writable()
        return consolidated_writer(self, name, spec, metadata)

    def consolidate(self) -> bool:
        """Rewrite the consolidated metadata of every group from the stored ``zarr.json`` files.

        Writers call it after every metadata change; call it after changing a cache with
        other tools. Returns False when it could not (a damaged cache: run ``actstore verify``).
        """
        self.check_writable()
        return reconsolidate(self.store, self.url)

    def missing_blocks(self, prompt_set: str) -> list[int]:
        """Blocks of *prompt_set* whose completion is not recorded yet."""
        info = self.set_info(prompt_set)
        n_blocks = int(info["layout"]["n_blocks"])
        if not info.get("ready"):
            return list(range(n_blocks))
        return missing_from_listing(self.store, prompt_set, n_blocks)

    def is_complete(self, prompt_set: str | None = None) -> bool:
        """True when every block of *prompt_set* (default: of every prompt set) is recorded."""
        names = [prompt_set] if prompt_set is not None else self.prompt_sets
        return all(not self.missing_blocks(n) for n in names)

    @located("write", "self")
    def write_derived(
        self,
        prompt_set: str,
        name: str,
        data: Any,
        *,
        dims: tuple[str, ...],
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a derived variable (e.g. ``probe_pred`` with dims ``(prompt, layer, token)``).

        *data* is a numpy or dask array whose dims are among the prompt set's dims; an existing
        variable of the same name is replaced. Block bookkeeping is not touched.
        """
        self.check_writable()
        self.group(prompt_set)  # an unknown set is named before anything changes
        with metadata_change(self, prompt_set):
            _write_derived(self, prompt_set, name, data, dims=dims, attrs=attrs)

    @located("write", "self")
    def write_dataset(self, group_path: str, ds: xr.Dataset) -> None:
        """Write *ds* as its own group (e.g. ``probes/<name>``), replacing one that exists."""
        self.check_writable()
        with metadata_change(self, str(group_path).strip("/")):
            _write_dataset(self, group_path, ds)

    def read_dataset(self, group_path: str, *, decode_bfloat16: bool = True) -> xr.Dataset:
        """Read a group written by :meth:`write_dataset` (in memory; bfloat16 as float32)."""
        return _read_dataset(self, group_path, decode_bfloat16=decode_bfloat16)

    def dataset(
        self, prompt_set: str, *, dtype: str | None = None, decode_bfloat16: bool = True
    ) -> xr.Dataset:
        """*prompt_set* as a lazy, dask-backed Dataset (see :func:`actstore.open`)."""
        return open_prompt_set(self, prompt_set, dtype=dtype, decode_bfloat16=decode_bfloat16)

    def activations(
        self,
        prompt_set: str,
        hook: str = "resid_post",
        *,
        layers: list[int] | tuple[int, ...] | None = None,
        dtype: str | None = None,
        decode_bfloat16: bool = True,
    ) -> xr.DataArray:
        """Lazy activations ``(prompt, layer, token, d_model)`` of *hook*, optionally some layers.

        *layers* are real layer indices (an int, a sequence or a 1-D integer array); an unknown
        hook or layer raises :class:`UnknownNameError` naming what exists, anything else
        :class:`InvalidArgumentError`.
        """
        layers = layer_list(layers)
        spec = self.spec(prompt_set)
        if hook not in spec.hooks:
            raise UnknownNameError(
                f"expected a stored variable of prompt set {prompt_set!r} (one of "
                f"{list(spec.hooks)}), got {hook!r}"
            )
        missing = [la for la in layers or () if la not in spec.layers]
        if missing:
            raise UnknownNameError(
                f"expected layers of prompt set {prompt_set!r} (from {list(spec.layers)}), got "
                f"{missing}; pick stored layers"
            )
        data = self.dataset(prompt_set, dtype=dtype, decode_bfloat16=decode_bfloat16)[hook]
        return data if layers is None else data.sel(layer=list(layers))

    def tree(self, *, dtype: str | None = None, decode_bfloat16: bool = True) -> xr.DataTree:
        """The whole cache as a lazy :class:`xarray.DataTree` (see :func:`actstore.open`)."""
        return open_tree(self, dtype=dtype, decode_bfloat16=decode_bfloat16)
