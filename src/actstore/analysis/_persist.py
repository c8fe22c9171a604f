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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from actstore.errors import (
    InvalidArgumentError,
    ProbeMismatchError,
    StoreNotFoundError,
    UnknownNameError,
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
    return out


def save_probes(probes: ProbeSet, dest: Any, *, name: str | None = None) -> str:
    """Save ``probes``; returns where they went.

    ``dest`` is a cache (``Cache``, or a path/URL of one, with ``name``: saved as ``probes/NAME``
    inside it), or a path ending in ``.npz`` (plus ``.json`` beside it) or ``.zarr`` (standalone).
    """
    ds = _json_attrs(probes.dataset)
    if isinstance(dest, str | os.PathLike) and str(dest).endswith(".npz"):
        path = Path(dest)
        arrays = {f"var/{k}": np.asarray(v.values) for k, v in ds.data_vars.items()}
        arrays.update({f"coord/{k}": np.asarray(v.values) for k, v in ds.coords.items()})
        np.savez(path, **arrays)
        meta = {
            "format": _FORMAT,
            "dims": {k: list(v.dims) for k, v in ds.variables.items()},
            "lineage": ds.attrs[_ATTR],
        }
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
        return str(path)
    if isinstance(dest, str | os.PathLike) and name is None:
        if not str(dest).rstrip("/").endswith(".zarr"):
            raise InvalidArgumentError(
                f"expected a .npz or .zarr path, or a cache plus a probe name, got {dest!r}; "
                "pass name= to save inside a cache"
            )
        ds.to_zarr(os.fspath(dest), mode="w", zarr_format=3, consolidated=False)
        return str(dest)
    if name is None:
        raise InvalidArgumentError("expected name= to save probes inside a cache, got None")
    _check_name(name)
    cache = dest
    if isinstance(dest, str | os.PathLike):
        from actstore import store

        cache = store.open_cache(os.fspath(dest), mode="r+")
    cache.write_dataset(f"probes/{name}", ds)
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
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != _FORMAT:
            raise InvalidArgumentError(
                f"expected probe metadata format {_FORMAT!r}, got {meta.get('format')!r}"
            )
        with np.load(path, allow_pickle=False) as npz:
            dims = meta["dims"]
            coords = {k[6:]: (dims[k[6:]], npz[k]) for k in npz.files if k.startswith("coord/")}
            data = {k[4:]: (dims[k[4:]], npz[k]) for k in npz.files if k.startswith("var/")}
        return ProbeSet(xr.Dataset(data, coords=coords, attrs={_ATTR: meta["lineage"]}))
    if name is None:
        path = os.fspath(src)
        if "://" not in path and not Path(path).exists():
            raise StoreNotFoundError(f"expected saved probes, got nothing at {path}")
        ds = xr.open_zarr(path, consolidated=False).load()
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
    return ProbeSet(ds)


def check_compatible(
    probes: ProbeSet, src: SetSource, *, hook: str, allow_model_mismatch: bool = False
) -> None:
    """Refuse probes whose d_model, layers or model fingerprint differ from the prompt set's."""
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
    stored = {int(v) for v in ds["layer"].values}
    missing = [v for v in probes.layers if v not in stored]
    if missing:
        raise ProbeMismatchError(
            f"expected the probes' layers {probes.layers} in prompt set {src.prompt_set!r}, got "
            f"layers {sorted(stored)} (missing {missing}); extract those layers or refit"
        )
    mine = probes.lineage.get("model_fingerprint")
    theirs = src.model_fingerprint
    if not allow_model_mismatch and mine is not None and theirs is not None and mine != theirs:
        raise ProbeMismatchError(
            f"expected activations of the model the probes were fitted on ({mine}), got model "
            f"{theirs}; use a cache of that model (or allow_model_mismatch=True if intended)"
        )


def list_probes(cache: Any) -> list[str]:
    """Names of the probe sets saved inside a cache (``probes/<name>``)."""
    if isinstance(cache, str | os.PathLike):
        from actstore import store

        cache = store.open_cache(os.fspath(cache), mode="r")
    root = cache.root
    if "probes" not in root:
        return []
    return sorted(name for name, _ in root["probes"].groups())
