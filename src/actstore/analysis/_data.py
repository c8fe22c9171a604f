"""Where analysis reads from: a cache (path, URL or ``Cache``) or an in-memory ``xarray.Dataset``.

Everything below works on one prompt set as an ``xarray.Dataset`` following the store contract:
``resid_post (prompt, layer, token, d_model)``, ``n_tokens (prompt,)``, label columns ``(prompt,)``,
``token_str (prompt, token)``, ``span (span,)`` and ``span_mask (prompt, span, token)``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from actstore.errors import IncompleteCacheError, InvalidArgumentError, UnknownNameError

if TYPE_CHECKING:  # imported where used: the light fit path (._light) imports neither
    import xarray as xr


def _values(var: Any) -> np.ndarray:
    from actstore.analysis._scheduler import values

    return values(var)


def is_number_dtype(dtype: Any) -> bool:
    from actstore.store.format import is_number_dtype as check

    return check(dtype)


__all__ = [
    "SetSource",
    "fingerprint_digest",
    "label_vector",
    "open_source",
    "position_losses",
    "select_positions",
    "token_selection",
]


@dataclass(frozen=True, kw_only=True)
class SetSource:
    """One prompt set opened for analysis."""

    ds: xr.Dataset
    prompt_set: str
    cache: Any | None  # the store's Cache when opened from one (needed to write back)
    url: str | None
    fingerprint: Mapping[str, Any]

    @property
    def digest(self) -> str:
        return fingerprint_digest(self.fingerprint)

    @property
    def model_fingerprint(self) -> Any:
        return self.fingerprint.get("model")


def fingerprint_digest(fingerprint: Mapping[str, Any]) -> str:
    """Short sha256 of a fingerprint's canonical JSON (what saved probes record)."""
    blob = json.dumps(fingerprint, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _set_fingerprint(ds: xr.Dataset) -> dict[str, Any]:
    meta = ds.attrs.get("actstore", {})
    if isinstance(meta, str):  # attributes written as a JSON string
        meta = json.loads(meta)
    if not isinstance(meta, Mapping):
        return {}
    # A store-opened set carries {"spec": {"fingerprint": ...}, ...}; a hand-built one may carry
    # {"fingerprint": ...} directly.
    spec = meta.get("spec", {})
    fp = spec.get("fingerprint") if isinstance(spec, Mapping) else None
    return dict(fp if fp is not None else meta.get("fingerprint", {}))


def open_source(cache: Any, prompt_set: str, *, mode: str = "r") -> SetSource:
    """Open ``prompt_set`` of ``cache``: a path/URL, ``Cache``, ``DataTree`` or ``Dataset``."""
    import xarray as xr

    if isinstance(cache, xr.Dataset):
        return SetSource(
            ds=cache,
            prompt_set=prompt_set,
            cache=None,
            url=None,
            fingerprint=_set_fingerprint(cache),
        )
    if isinstance(cache, xr.DataTree):
        if prompt_set not in cache.children:
            raise UnknownNameError(
                f"expected a prompt set of the tree {sorted(cache.children)}, got {prompt_set!r}; "
                "pass one of those names"
            )
        ds = cache[prompt_set].to_dataset()
        return SetSource(
            ds=ds, prompt_set=prompt_set, cache=None, url=None, fingerprint=_set_fingerprint(ds)
        )
    from actstore import store

    cache_obj = (
        store.open_cache(os.fspath(cache), mode=mode)
        if isinstance(cache, str | os.PathLike)
        else cache
    )
    if prompt_set not in cache_obj.prompt_sets:
        raise UnknownNameError(
            f"expected a prompt set of the cache {cache_obj.url} ({cache_obj.prompt_sets}), "
            f"got {prompt_set!r}; pass one of those names"
        )
    missing = cache_obj.missing_blocks(prompt_set)
    if missing:
        # Missing blocks read as zeros: statistics over them would be silently wrong.
        raise IncompleteCacheError(
            f"expected a complete prompt set, got {prompt_set!r} of {cache_obj.url} with "
            f"{len(missing)} block(s) missing (e.g. {missing[:5]}); resume the extraction first"
        )
    # bfloat16 stays raw here: the row readers (_stats._take, _detect._predict) convert only the
    # rows they keep to float32, so decoding whole slices on open would only add work and memory.
    ds = cache_obj.dataset(prompt_set, decode_bfloat16=False)
    return SetSource(
        ds=ds,
        prompt_set=prompt_set,
        cache=cache_obj,
        url=cache_obj.url,
        fingerprint=_set_fingerprint(ds),
    )


def label_vector(ds: xr.Dataset, target: str) -> np.ndarray:
    """The numeric label column ``target`` as float64 ``(prompt,)`` (NaN where missing)."""
    if target not in ds.variables or ds[target].dims != ("prompt",):
        # sorted: the store lists variables in directory order, which differs between filesystems
        labels = sorted(
            str(v)
            for v in ds.data_vars
            if ds[v].dims == ("prompt",) and v != "n_tokens" and is_number_dtype(ds[v].dtype)
        )
        raise UnknownNameError(
            f"expected a label column of the prompt set ({', '.join(labels) or 'none'}), got "
            f"{target!r}; pass --target with one of those"
        )
    values = _values(ds[target])
    if not is_number_dtype(values.dtype):
        raise InvalidArgumentError(
            f"expected a numeric target column, got {target!r} of dtype {values.dtype}; "
            "probes regress numbers: pass a numeric label"
        )
    return values.astype(np.float64)


def span_masks(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Span name -> bool mask ``(prompt, token)``, read into memory (small)."""
    if "span_mask" not in ds.variables:
        return {}
    masks = np.asarray(_values(ds["span_mask"]), dtype=bool)
    names = [str(s) for s in _values(ds["span"])]
    return {name: masks[:, i, :] for i, name in enumerate(names)}


def select_positions(
    ds: xr.Dataset, position: str, prompts: Sequence[int] | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Token positions named by ``position`` for every prompt: ``(prompt_index, token_index)``.

    ``prompt_index`` are positions along the ``prompt`` dimension (not labels), sorted, with the
    tokens of each prompt in order; padding tokens are never selected.
    """
    n_tokens = np.asarray(_values(ds["n_tokens"]), dtype=np.int64)
    return token_selection(n_tokens, span_masks(ds), position, prompts)


def token_selection(
    n_tokens: np.ndarray,
    masks: dict[str, np.ndarray],
    position: str,
    prompts: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`select_positions` from ``n_tokens (prompt,)`` and the span masks in memory."""
    from actstore.prompts import parse_position

    pos = parse_position(position)
    if pos.span is not None and pos.span not in masks:
        raise UnknownNameError(
            f"expected a span of the prompt set ({', '.join(masks) or 'none'}), got "
            f"{pos.span!r} in position {position!r}; use one of those or 'last'/'all'"
        )
    keep = np.zeros(len(n_tokens), dtype=bool)
    keep[np.arange(len(n_tokens)) if prompts is None else np.asarray(prompts, dtype=np.int64)] = (
        True
    )
    mask = pos.token_mask(n_tokens, masks) & keep[:, None]
    prompt, token = np.nonzero(mask)  # row-major: prompts ascending, tokens in order
    return prompt.astype(np.int64), token.astype(np.int64)


def position_losses(
    ds: xr.Dataset, position: str, candidates: np.ndarray, selected: np.ndarray
) -> str | None:
    """Why some ``candidates`` (prompt positions) got no token from ``position``, or ``None``.

    ``selected`` are the prompt positions :func:`select_positions` returned rows for. The answer is
    one sentence naming the position, the count of prompts left out and each reason's count:
    the span is absent from the prompt, lies only in padding (beyond ``n_tokens``), or (for
    ``before:SPAN``) starts at token 0 so that no token precedes it.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    lost = _left_out(candidates, selected)
    from actstore.prompts import parse_position

    if not lost.size or parse_position(position).span is None:
        return None
    n_tokens = np.asarray(_values(ds["n_tokens"]), dtype=np.int64)
    return losses_of(n_tokens, span_masks(ds), position, candidates, selected)


def _left_out(candidates: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """``np.setdiff1d(candidates, selected)`` for prompt positions (sorted, unique), without
    ``np.unique`` (which imports numpy.ma: ~20 ms of a fit in a fresh process)."""
    candidates = np.asarray(candidates, dtype=np.int64)
    selected = np.asarray(selected, dtype=np.int64)
    size = int(max(candidates.max(initial=-1), selected.max(initial=-1))) + 1
    keep = np.zeros(size, dtype=bool)
    keep[candidates] = True
    keep[selected] = False
    return np.flatnonzero(keep).astype(np.int64)


def losses_of(
    n_tokens: np.ndarray,
    masks: dict[str, np.ndarray],
    position: str,
    candidates: np.ndarray,
    selected: np.ndarray,
) -> str | None:
    """:func:`position_losses` from ``n_tokens (prompt,)`` and the span masks in memory."""
    from actstore.prompts import parse_position

    candidates = np.asarray(candidates, dtype=np.int64)
    lost = _left_out(candidates, selected)
    pos = parse_position(position)
    if not lost.size or pos.span is None:
        return None
    mask = masks[pos.span][lost]
    n_tokens = n_tokens[lost]
    inside = mask & (np.arange(mask.shape[1])[None, :] < n_tokens[:, None])
    absent = ~mask.any(axis=1)
    padding = ~absent & ~inside.any(axis=1)
    at_zero = inside.any(axis=1) & inside[:, 0]
    reasons = []
    for flag, why in (
        (absent, f"span {pos.span!r} is absent"),
        (padding, f"span {pos.span!r} lies only in padding (beyond n_tokens)"),
        (at_zero, f"span {pos.span!r} starts at token 0, so no token precedes it"),
    ):
        if flag.any():
            shown = ", ".join(str(int(p)) for p in lost[flag][:5])
            more = ", ..." if flag.sum() > 5 else ""
            reasons.append(f"{int(flag.sum())} where {why} (e.g. prompts {shown}{more})")
    return (
        f"position {position!r} selects no token in {lost.size} of {candidates.size} prompts, "
        f"which are left out: {'; '.join(reasons)}"
    )
