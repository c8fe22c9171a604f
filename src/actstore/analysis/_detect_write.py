"""Where detection stores its predictions: opening the cache for it and writing them back.

Predictions are the derived variable ``pred_<probe>`` (and ``pred_<probe>_control``) of the prompt
set, ``(prompt, layer, token)`` over the prompt set's stored layers, NaN at padding and at layers
the probes were not applied to. A read-only cache is refused before any work, pointing to
``--no-write``; a variable holding another probe's predictions is never replaced.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from actstore.analysis._data import SetSource, open_source
from actstore.errors import InvalidArgumentError, ReadOnlyError

__all__: list[str] = []

_HINT = "pass --no-write (write=False) to detect without storing the predictions"


def _open_for_detect(cache: Any, prompt_set: str, write: bool) -> SetSource:
    """Open *prompt_set* for detection; with *write*, refuse a cache that cannot take the write."""
    if not write:
        return open_source(cache, prompt_set, mode="r")
    if getattr(cache, "mode", None) == "r":  # a Cache the caller opened read-only
        raise ReadOnlyError(
            f"expected a cache opened for writing to store the predictions in, got {cache.url!r} "
            f"opened read-only; {_HINT}, or open it with mode='r+'"
        )
    try:
        src = open_source(cache, prompt_set, mode="r+")
    except ReadOnlyError as exc:
        raise ReadOnlyError(
            f"expected a writable cache to store the predictions in, got {_where(cache)}, which "
            f"is read-only; {_HINT}"
        ) from exc
    path = _local_group(src)
    if path is not None and not os.access(path, os.W_OK):
        raise ReadOnlyError(
            f"expected a writable cache to store the predictions in, got {src.url!r}, whose "
            f"prompt set {prompt_set!r} this user cannot write; {_HINT}"
        )
    return src


def _where(cache: Any) -> str:
    return repr(os.fspath(cache)) if isinstance(cache, str | os.PathLike) else repr(cache.url)


def _local_group(src: SetSource) -> str | None:
    from actstore.store.format import is_local, zip_location

    url = src.url
    if url is None or not is_local(url) or zip_location(url) is not None:
        return None
    return os.path.join(url, src.prompt_set)


def _check_names(src: SetSource, name: str, probe_name: str, control: bool) -> None:
    """Refuse a derived name before any work (the same checks as the write itself)."""
    from actstore.store.core import check_derived_name as _check_derived_name
    from actstore.store.format import check_name as _check_name

    if src.cache is None:  # an in-memory Dataset: the write itself says it cannot be stored
        return
    group = src.cache.group(src.prompt_set)
    hooks = src.cache.spec(src.prompt_set).hooks
    for var in [name] + ([f"{name}_control"] if control else []):
        _check_name("derived variable", var)
        _check_derived_name(group, src.prompt_set, var, hooks)
        _refuse_other_probe(src, var, probe_name)


def _write_back(
    src: SetSource, name: str, values: np.ndarray, layers: list[int], lineage: dict
) -> None:
    """Store ``values (prompt, probe layer, token, probe)`` as ``name`` (and ``name_control``)."""
    stored = [int(v) for v in src.ds["layer"].values]
    full = np.full(
        (values.shape[0], len(stored), values.shape[2], values.shape[3]), np.nan, dtype=np.float32
    )
    full[:, [stored.index(v) for v in layers]] = values
    attrs = json.loads(json.dumps(lineage, default=str))
    names = [name] + ([f"{name}_control"] if values.shape[3] > 1 else [])
    for var in names:
        _refuse_other_probe(src, var, str(lineage.get("probe_name")))
    dims = ("prompt", "layer", "token")
    try:
        src.cache.write_derived(src.prompt_set, name, full[..., 0], dims=dims, attrs=attrs)
        if values.shape[3] > 1:
            attrs_c = {**attrs, "control": "shuffled_probe"}
            src.cache.write_derived(
                src.prompt_set, f"{name}_control", full[..., 1], dims=dims, attrs=attrs_c
            )
    except OSError as exc:
        if not isinstance(exc, PermissionError) and exc.errno not in (errno.EROFS, errno.EACCES):
            raise
        if isinstance(exc, ReadOnlyError):
            raise
        raise ReadOnlyError(
            f"expected a writable cache to store the predictions in, got {src.url!r}, which "
            f"refused the write ({type(exc).__name__}: {exc}); {_HINT}"
        ) from exc


def _refuse_other_probe(src: SetSource, var: str, probe_name: str) -> None:
    """A derived variable of *var*'s name written for another probe is not replaced."""
    if var not in src.ds.variables:
        return
    meta = src.ds[var].attrs.get("actstore")
    lineage = meta.get("lineage") if isinstance(meta, Mapping) else None
    old = lineage.get("probe_name") if isinstance(lineage, Mapping) else None
    if old is not None and old != probe_name:
        raise InvalidArgumentError(
            f"expected {var!r} of prompt set {src.prompt_set!r} to hold this probe's predictions "
            f"({probe_name!r}), got those of probe {old!r}; pass another --name (name=)"
        )
