"""Saving and loading probes without pickle, and refusing probes that do not fit a cache.

Three places a :class:`ProbeSet` can live:

* inside a cache, as the Zarr group ``probes/NAME`` (``Cache.write_dataset``);
* a standalone ``.zarr`` directory (plain ``xarray.Dataset.to_zarr``);
* a standalone ``.npz`` (plain arrays, loaded with ``allow_pickle=False``) plus a ``.json`` sidecar
  holding the lineage and the dimension names.

The lineage travels with it as JSON: cache fingerprint, model fingerprint, prompt set, target,
position, layers, d_model.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from actstore._locations import located, require_local
from actstore.errors import (
    ActstoreError,
    CorruptCacheError,
    InvalidArgumentError,
    ProbeMismatchError,
    StoreNotFoundError,
    UnknownNameError,
    UnsafeCacheError,
)

if TYPE_CHECKING:
    from actstore.analysis._data import SetSource
    from actstore.analysis._probes import ProbeSet

__all__ = ["check_compatible", "list_probes", "load_probes", "save_probes"]

_ATTR = "actstore_probe"
_FORMAT = "actstore-probes-npz/1"


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or not name.isprintable():
        raise InvalidArgumentError(
            f"expected a probe name without '/' or leading '.', got {name!r}; e.g. 'value_last'"
        )


def _json_attrs(ds: xr.Dataset) -> xr.Dataset:
    """Attributes round-tripped through JSON (zarr stores JSON; numpy scalars must not slip in)."""
    out = ds.copy()
    out.attrs = {_ATTR: json.loads(json.dumps(ds.attrs[_ATTR], default=str))}
    for k, v in out.coords.items():  # class names: variable-length strings (zarr's "string")
        if v.dtype.kind == "U":
            out[k] = v.astype(object)
    return out


@located("write", "dest")
def save_probes(probes: ProbeSet, dest: Any, *, name: str | None = None) -> str:
    """Save ``probes``; returns where they went.

    ``dest`` is a cache (``Cache``, or a path/URL of one, with ``name``: saved as ``probes/NAME``
    inside it), or a path ending in ``.npz`` (plus ``.json`` beside it) or ``.zarr`` (standalone).
    """
    ds = _json_attrs(probes.dataset)
    if isinstance(dest, str | os.PathLike) and str(dest).endswith(".npz"):
        path = Path(require_local(dest, "a .npz probe file"))
        arrays = {f"var/{k}": np.asarray(v.values) for k, v in ds.data_vars.items()}
        # Strings as fixed-width unicode: an object array would need pickle to load.
        arrays.update(
            {
                f"coord/{k}": np.asarray(v.values).astype(str if v.dtype == object else v.dtype)
                for k, v in ds.coords.items()
            }
        )
        np.savez(path, **arrays)
        meta = {
            "format": _FORMAT,
            "dims": {k: list(v.dims) for k, v in ds.variables.items()},
            "lineage": ds.attrs[_ATTR],
        }
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
        probes.name = probes.name or path.stem
        return str(path)
    if isinstance(dest, str | os.PathLike) and name is None:
        if not str(dest).rstrip("/").endswith(".zarr"):
            raise InvalidArgumentError(
                f"expected a .npz or .zarr path, or a cache plus a probe name, got {dest!r}; "
                "pass name= to save inside a cache"
            )
        ds.to_zarr(
            os.fspath(dest), mode="w", zarr_format=3, consolidated=False, write_empty_chunks=True
        )
        probes.name = probes.name or Path(os.fspath(dest).rstrip("/")).stem
        return str(dest)
    if name is None:
        raise InvalidArgumentError("expected name= to save probes inside a cache, got None")
    _check_name(name)
    cache = dest
    if isinstance(dest, str | os.PathLike):
        from actstore import store

        cache = store.open_cache(os.fspath(dest), mode="r+")
    cache.write_dataset(f"probes/{name}", ds)
    probes.name = name
    return f"{cache.url}#probes/{name}"


def load_probes(src: Any, *, name: str | None = None) -> ProbeSet:
    """Load probes saved by :func:`save_probes`: ``.npz``, standalone ``.zarr``, or cache + name."""
    from actstore.analysis._probes import ProbeSet

    if isinstance(src, str | os.PathLike) and str(src).endswith(".npz"):
        path = Path(src)
        if not path.exists():
            raise StoreNotFoundError(f"expected a saved probe file, got no file at {path}")
        meta_path = path.with_suffix(".json")
        if not meta_path.exists():
            raise StoreNotFoundError(
                f"expected the probe metadata {meta_path} beside {path}, got none; "
                "copy the .json together with the .npz"
            )
        try:
            meta = json.loads(meta_path.read_text())
        except (ValueError, RecursionError) as exc:
            raise CorruptCacheError(
                f"expected JSON probe metadata in {meta_path}, got {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise InvalidArgumentError(f"expected probe metadata format {_FORMAT!r}, got {got!r}")
        return ProbeSet(_read_npz(path, meta), name=path.stem)
    if name is None:
        path = os.fspath(src)
        if "://" not in path and not Path(path).exists():
            raise StoreNotFoundError(f"expected saved probes, got nothing at {path}")
        ds = _open_standalone_zarr(path)
    else:
        cache = src
        if isinstance(src, str | os.PathLike):
            from actstore import store

            cache = store.open_cache(os.fspath(src), mode="r")
        try:
            ds = cache.read_dataset(f"probes/{name}").load()
        except (KeyError, FileNotFoundError) as exc:
            raise UnknownNameError(
                f"expected probes named {name!r} in {cache.url}, got none; "
                "list them with `actstore probe show CACHE`"
            ) from exc
    if _ATTR not in ds.attrs:
        raise InvalidArgumentError(f"expected saved actstore probes, got a dataset without {_ATTR}")
    attrs = ds.attrs[_ATTR]
    ds.attrs = {_ATTR: json.loads(attrs) if isinstance(attrs, str) else dict(attrs)}
    return ProbeSet(ds, name=name or Path(os.fspath(src).rstrip("/")).stem)


def _read_npz(path: Path, meta: dict[str, Any]) -> xr.Dataset:
    """The probe arrays of a ``.npz`` (never unpickled) with the sidecar's dims and lineage."""
    import zipfile

    dims = meta.get("dims")
    if not isinstance(dims, dict) or "lineage" not in meta:
        raise CorruptCacheError(
            f"expected 'dims' and 'lineage' in the probe metadata beside {path}, got keys "
            f"{sorted(meta)}; save the probes again"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise UnsafeCacheError(
                f"expected numeric probe arrays in {path}, got a Python object array, which "
                "only unpickling (running code) could load; refusing it: save the probes again "
                "with actstore"
            ) from exc
        raise CorruptCacheError(f"expected a readable .npz at {path}, got {exc}") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise CorruptCacheError(f"expected a readable .npz at {path}, got {exc}") from exc
    try:
        coords = {k[6:]: (dims[k[6:]], v) for k, v in arrays.items() if k.startswith("coord/")}
        data = {k[4:]: (dims[k[4:]], v) for k, v in arrays.items() if k.startswith("var/")}
        return xr.Dataset(data, coords=coords, attrs={_ATTR: meta["lineage"]})
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptCacheError(
            f"expected probe arrays matching the dims in the metadata beside {path}, got "
            f"{type(exc).__name__}: {exc}; save the probes again"
        ) from exc


def _open_standalone_zarr(path: str) -> xr.Dataset:
    """A standalone probe ``.zarr``, under the same metadata checks as a cache (no v2, no
    codec outside the allow-list, bounded sizes) before xarray reads it."""
    from actstore.store import open_store

    store = open_store(path)
    try:
        return xr.open_zarr(store, consolidated=False, zarr_format=3).load()
    except (ActstoreError, MemoryError):
        raise
    except Exception as exc:  # damaged chunk bytes can fail inside any codec
        raise CorruptCacheError(
            f"expected saved probes at {path}, got unreadable data ({type(exc).__name__}: "
            f"{exc}); save the probes again"
        ) from exc


def check_compatible(
    probes: ProbeSet,
    src: SetSource,
    *,
    hook: str,
    allow_model_mismatch: bool = False,
    layers: Sequence[int] | None = None,
) -> list[int]:
    """Refuse probes whose d_model or model fingerprint differ from the prompt set's; return the
    layers to use.

    The layers are *layers* when given (each must be both probed and stored), else every probed
    layer the prompt set stores (a subset copy may hold only some): the others are named in a
    warning, and none in common is refused.

    Raises
    ------
    ProbeMismatchError
        Other activation, d_model or model; no probed layer stored.
    UnknownNameError
        *layers* names a layer the probes or the prompt set lack.
    """
    ds = src.ds
    if hook not in ds.variables:
        raise ProbeMismatchError(
            f"expected the activation {hook!r} the probes were fitted on in prompt set "
            f"{src.prompt_set!r}, got {sorted(map(str, ds.data_vars))}; use a cache with {hook}"
        )
    d = int(ds.sizes["d_model"])
    if probes.d_model != d:
        raise ProbeMismatchError(
            f"expected probes for d_model {d} (prompt set {src.prompt_set!r}), got probes of "
            f"d_model {probes.d_model}; fit probes on activations of the same model"
        )
    use = usable_layers(probes, src, layers)
    mine = probes.lineage.get("model_fingerprint")
    theirs = src.model_fingerprint
    if not allow_model_mismatch and mine is not None and theirs is not None and mine != theirs:
        raise ProbeMismatchError(
            f"expected activations of the model the probes were fitted on ({mine}), got model "
            f"{theirs}; use a cache of that model (or allow_model_mismatch=True if intended)"
        )
    return use


def usable_layers(probes: ProbeSet, src: SetSource, layers: Sequence[int] | None) -> list[int]:
    """The layers detection uses (see :func:`check_compatible`)."""
    stored = [int(v) for v in src.ds["layer"].values]
    both = [v for v in probes.layers if v in stored]
    if layers is not None:
        wanted = [int(v) for v in layers]
        if not wanted or len(set(wanted)) != len(wanted) or any(v not in both for v in wanted):
            raise UnknownNameError(
                f"expected distinct layers both the probes {probes.layers} and prompt set "
                f"{src.prompt_set!r} {stored} have, got {wanted}; pick among {both}"
            )
        return wanted
    if not both:
        raise ProbeMismatchError(
            f"expected some of the probes' layers {probes.layers} in prompt set "
            f"{src.prompt_set!r}, got layers {stored}; extract those layers or refit the probes"
        )
    dropped = [v for v in probes.layers if v not in stored]
    if dropped:
        warnings.warn(
            f"prompt set {src.prompt_set!r} stores {len(both)} of the probes' "
            f"{len(probes.layers)} layers: using {both}, leaving out {dropped} (not stored); "
            "pass layers= (--layers) to choose",
            UserWarning,
            stacklevel=4,
        )
    return both


def list_probes(cache: Any) -> list[str]:
    """Names of the probe sets saved inside a cache (``probes/<name>``)."""
    if isinstance(cache, str | os.PathLike):
        from actstore import store

        cache = store.open_cache(os.fspath(cache), mode="r")
    root = cache.root
    if "probes" not in root:
        return []
    return sorted(name for name, _ in root["probes"].groups())
