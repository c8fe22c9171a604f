"""Create and open caches: :func:`create_cache`, :func:`open_cache` and :class:`Cache`."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.core.sync import sync

from actstore._locations import located, location_error, location_errors
from actstore._version import __version__
from actstore.errors import (
    ActstoreError,
    CorruptCacheError,
    InvalidArgumentError,
    NotACacheError,
    ReadOnlyError,
    SchemaVersionError,
    StoreNotFoundError,
    UnknownNameError,
)
from actstore.store._arrays import open_or_create_group
from actstore.store._dtype import register_bfloat16
from actstore.store._enospc import disk_full_as_error
from actstore.store._markers import missing_from_listing
from actstore.store._metastore import MetadataStore, read_consolidated
from actstore.store._partial import is_partial
from actstore.store._safety import ScanResult, damaged_error_message, scan_store
from actstore.store._schema import (
    ATTR_KEY,
    PROBES_GROUP,
    SCHEMA_VERSION,
    PromptSetMetadata,
    PromptSetSpec,
    _jsonable,
    spec_from_json,
)
from actstore.store._storage import directory_lock, is_local, make_store, normalize_url

if TYPE_CHECKING:
    import xarray as xr

    from actstore.store._writer import PromptSetWriter

__all__ = ["Cache", "create_cache", "open_cache"]


def _library_versions() -> dict[str, str]:
    # Read from the installed metadata: importing xarray only for its version costs ~0.6 s.
    from importlib.metadata import PackageNotFoundError, version

    out = {"actstore": __version__, "zarr": zarr.__version__, "numpy": np.__version__}
    for name in ("xarray", "numcodecs"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - both are dependencies
            out[name] = "unknown"
    out["python"] = platform.python_version()
    return out


def create_cache(
    url: str | os.PathLike[str],
    *,
    provenance: Mapping[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Cache:
    """Create an empty cache at *url*, or open the existing one for writing (idempotent).

    Safe when several processes call it at once for the same URL: they all end with one cache.
    Returns the :class:`Cache` opened in mode ``"r+"``.
    """
    register_bfloat16()
    url = normalize_url(url)
    with location_errors(url, "write"):
        return _create_cache(url, provenance, storage_options)


def _create_cache(
    url: str, provenance: Mapping[str, Any] | None, storage_options: dict[str, Any] | None
) -> Cache:
    store = make_store(url, read_only=False, storage_options=storage_options)
    if sync(store.exists("zarr.json")):
        try:
            return open_cache(url, mode="r+", storage_options=storage_options)
        except NotACacheError:
            # A bare root is a creation killed (or still running) between writing the root group
            # and its attributes: finish it. Anything else may be a concurrent creator that wrote
            # the attributes meanwhile: look once more, and let that answer stand.
            if not _is_bare_root(store):
                return open_cache(url, mode="r+", storage_options=storage_options)
    path = url if is_local(url) else None
    other = None if path is not None else sync(_other_key(store))
    if other is not None:  # the rule for directories below, on fsspec URLs (memory://, s3://)
        raise NotACacheError(
            f"expected an empty or new location for a new cache, got {url!r} with other objects "
            f"in it (e.g. {other!r}); pick a new URL"
        )
    if path is not None and os.path.isfile(path):
        raise NotACacheError(f"expected a directory for a new cache, got the file {url!r}")
    # A zarr.json that appeared since the check above is a concurrent creator's root, not
    # "other files": fall through and reuse it (mode "a" below), then open_cache compares.
    if (
        path is not None
        and os.path.isdir(path)
        and _user_files(path)
        and not os.path.exists(os.path.join(path, "zarr.json"))
    ):
        raise NotACacheError(
            f"expected an empty or new directory for a new cache, got {url!r} with other files "
            "in it; pick a new path"
        )
    info = {
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "library_versions": _library_versions(),
        "provenance": _jsonable(dict(provenance or {}), "provenance"),
    }
    try:
        # mode "a" creates the group only when it is missing; a concurrent creator's is reused.
        # zarr's create is check-then-write, so a local creator that lost the race could replace
        # the winner's root (attributes and all): creators of one local cache take turns.
        with disk_full_as_error(url, "creating the cache"), _creating(path):
            root = open_or_create_group(store)
            if ATTR_KEY not in root.attrs:
                root.attrs[ATTR_KEY] = info
    except PermissionError as exc:
        raise ReadOnlyError(
            f"expected a writable location for a new cache, got {exc}; pick a writable path"
        ) from exc
    cache = open_cache(url, mode="r+", storage_options=storage_options)
    cache.consolidate()
    return cache


@contextlib.contextmanager
def _creating(path: str | None) -> Iterator[None]:
    """Lock the local cache directory while its root is created (released before anything else
    locks it, see :func:`directory_lock`)."""
    if path is None:
        yield
        return
    os.makedirs(path, exist_ok=True)
    with directory_lock(path):
        yield


def _user_files(path: str) -> list[str]:
    """Files of a directory, ignoring zarr's temporary ``.partial`` files of a killed creation."""
    return [f for f in os.listdir(path) if not is_partial(f)]


def _is_bare_root(store: Any) -> bool:
    """True for a root group with no attributes and no members (an interrupted creation)."""
    try:
        root = zarr.open_group(store=store, mode="r", zarr_format=3)
        return not dict(root.attrs) and not any(True for _ in root.members())
    except Exception:  # damaged metadata is not "bare": leave it to open_cache's message
        return False


def open_cache(
    url: str | os.PathLike[str],
    *,
    mode: str = "r",
    storage_options: dict[str, Any] | None = None,
    consolidated: bool = False,
) -> Cache:
    """Open an existing cache: ``mode="r"`` (default, read-only) or ``"r+"`` (read-write).

    ``consolidated=True``: read a remote cache's metadata from its consolidated metadata, in one
    read (see :mod:`actstore.store._consolidated`), instead of file by file.
    """
    register_bfloat16()
    if mode not in ("r", "r+"):
        raise InvalidArgumentError(f"expected mode 'r' or 'r+', got {mode!r}")
    url = normalize_url(url)
    if is_local(url) and not os.path.exists(url):
        raise StoreNotFoundError(
            f"expected a cache at {url!r}, got no such file or directory; check the path or "
            "create it with `actstore extract`"
        )
    with location_errors(url, "read"):  # a missing bucket, refused credentials, no endpoint
        return _open_cache(url, mode, storage_options, consolidated)


def _open_cache(
    url: str, mode: str, storage_options: dict[str, Any] | None, consolidated: bool
) -> Cache:
    try:
        store = make_store(url, read_only=mode == "r", storage_options=storage_options)
        has_root = sync(store.exists("zarr.json"))
    except FileNotFoundError:
        raise StoreNotFoundError(f"expected a cache at {url!r}, got nothing there") from None
    except ActstoreError:  # e.g. ReadOnlyError: a zip opened for writing
        raise
    except OSError as exc:
        if not is_local(url) or isinstance(exc, PermissionError):
            raise location_error(exc, url, "read") from exc
        raise NotACacheError(f"expected a Zarr v3 cache at {url!r}, got {exc}") from None
    if not has_root:
        if is_local(url) and os.path.isdir(url) and os.listdir(url) and not _user_files(url):
            raise StoreNotFoundError(  # a creation killed while writing the root: start again
                f"expected a cache at {url!r}, got only the temporary files of an interrupted "
                "creation; re-run the extraction to create it"
            )
        if not is_local(url) and not sync(_has_any_key(store)):
            raise StoreNotFoundError(f"expected a cache at {url!r}, got nothing there")
        raise NotACacheError(
            f"expected an actstore cache (a Zarr v3 group) at {url!r}, got no zarr.json there; "
            "pass the cache's top-level path"
        )
    # a cache is data, never code: every zarr.json is checked before zarr parses any of them,
    # and zarr reads them only through MetadataStore, which hands on nothing unchecked
    remote = consolidated and mode == "r" and not is_local(url)  # local reads are cheap
    found = read_consolidated(store, url) if remote else None
    if found is not None:
        scan, pins = found
        store = MetadataStore(store, pins)
    else:
        scan = scan_store(store, url)
        store = MetadataStore(store)
    if scan.unreadable_groups:
        key = scan.unreadable_groups[0]
        raise CorruptCacheError(damaged_error_message(url, key, scan.damaged[key]))
    try:
        root = zarr.open_group(store=store, mode="r" if mode == "r" else "r+", zarr_format=3)
    except (ValueError, OSError) as exc:
        raise NotACacheError(
            f"expected a Zarr v3 group at {url!r}, got {type(exc).__name__}: {exc}"
        ) from None
    info = root.attrs.get(ATTR_KEY)
    if not isinstance(info, Mapping) or "schema_version" not in info:
        raise NotACacheError(
            f"expected an actstore cache at {url!r}, got a Zarr group without "
            f"attrs[{ATTR_KEY!r}]; it was not written by actstore"
        )
    if info["schema_version"] != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"expected schema version {SCHEMA_VERSION}, got {info['schema_version']} in {url!r}; "
            "use the actstore version that wrote it (see attrs library_versions) or re-extract"
        )
    return Cache(
        url=url, store=store, root=root, mode=mode, storage_options=storage_options, scan=scan
    )


async def _other_key(store: Any) -> str | None:
    """A key at a location with no root ``zarr.json`` (``None`` when there is none, or when a
    concurrent creator's root has appeared since: that one is reused)."""
    async for key in store.list():
        if key != "zarr.json":
            return None if await store.exists("zarr.json") else key
    return None


async def _has_any_key(store: Any) -> bool:
    async for _ in store.list():
        return True
    return False


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
        #: What the metadata scan at open found (damaged keys); see :mod:`actstore.store._safety`.
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
        from actstore.store._consolidated import consolidated_writer

        self.check_writable()
        return consolidated_writer(self, name, spec, metadata)

    def consolidate(self) -> bool:
        """Rewrite the consolidated metadata of every group from the stored ``zarr.json`` files.

        Writers call it after every metadata change; call it after changing a cache with
        other tools. Returns False when it could not (a damaged cache: run ``actstore verify``).
        """
        from actstore.store._consolidated import reconsolidate

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
        from actstore.store._consolidated import metadata_change
        from actstore.store._derived import write_derived

        self.check_writable()
        self.group(prompt_set)  # an unknown set is named before anything changes
        with metadata_change(self, prompt_set):
            write_derived(self, prompt_set, name, data, dims=dims, attrs=attrs)

    @located("write", "self")
    def write_dataset(self, group_path: str, ds: xr.Dataset) -> None:
        """Write *ds* as its own group (e.g. ``probes/<name>``), replacing one that exists."""
        from actstore.store._consolidated import metadata_change
        from actstore.store._derived import write_dataset

        self.check_writable()
        with metadata_change(self, str(group_path).strip("/")):
            write_dataset(self, group_path, ds)

    def read_dataset(self, group_path: str, *, decode_bfloat16: bool = True) -> xr.Dataset:
        """Read a group written by :meth:`write_dataset` (in memory; bfloat16 as float32)."""
        from actstore.store._derived import read_dataset

        return read_dataset(self, group_path, decode_bfloat16=decode_bfloat16)

    def dataset(
        self, prompt_set: str, *, dtype: str | None = None, decode_bfloat16: bool = True
    ) -> xr.Dataset:
        """*prompt_set* as a lazy, dask-backed Dataset (see :func:`actstore.open`)."""
        from actstore.store._open import open_prompt_set

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

        *layers* are real layer indices; an unknown hook or layer raises
        :class:`UnknownNameError` naming what exists.
        """
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
        from actstore.store._open import open_tree

        return open_tree(self, dtype=dtype, decode_bfloat16=decode_bfloat16)
