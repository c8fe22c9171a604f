"""The prompt-set part of the metadata scan: a stored spec must parse, be bounded and match the
shapes of the arrays beside it (see :mod:`actstore.store.format._safety`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any

from actstore._validate import is_int as _is_int
from actstore.errors import ActstoreError, UnsafeCacheError
from actstore.store.format._safety_limits import MAX_INDEX_LENGTH, MAX_STORED_OBJECTS, _Damaged
from actstore.store.format._schema import (
    ACT_DIMS,
    ATTR_KEY,
    DONE_ARRAY,
    PromptSetSpec,
    spec_from_json,
)

__all__ = ["check_prompt_set"]

#: Bounds of a stored spec (far above any real model: Qwen2.5-32B has 64 layers, d_model 5120).
MAX_LAYERS = 2**16
MAX_D_MODEL = 2**24
MAX_HOOKS = 256


def check_prompt_set(name: str, attrs: Mapping[str, Any], children: Mapping[str, Any]) -> None:
    """Raise ``_Damaged`` (spec unreadable or contradicting the arrays) or
    :class:`UnsafeCacheError` (sizes over the bounds); a group without a spec is not checked."""
    info = attrs.get(ATTR_KEY)
    if not isinstance(info, Mapping) or "spec" not in info:
        return
    raw = info["spec"]
    if not isinstance(raw, Mapping):
        raise _Damaged(f"expected the prompt set's spec as a JSON object, got {raw!r:.100}")
    # fields added later carry defaults (e.g. codec): a cache written before them stays readable
    missing = [
        f.name
        for f in fields(PromptSetSpec)
        if f.name not in raw and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise _Damaged(f"expected a stored spec with every field, got one without {missing}")
    for field in ("n_prompts", "n_tokens_max", "d_model"):
        if not _is_int(raw.get(field)):
            raise _Damaged(f"expected spec.{field} as an integer, got {raw.get(field)!r:.100}")
    for field in ("layers", "hooks"):
        if not isinstance(raw.get(field), list):
            raise _Damaged(f"expected spec.{field} as a list, got {raw.get(field)!r:.100}")
    bounds = {
        "n_prompts": MAX_INDEX_LENGTH,
        "n_tokens_max": MAX_INDEX_LENGTH,
        "d_model": MAX_D_MODEL,
    }
    for field, bound in bounds.items():
        if raw[field] > bound:
            raise UnsafeCacheError(f"spec.{field} = {raw[field]} over the bound {bound}")
    if len(raw["layers"]) > MAX_LAYERS or len(raw["hooks"]) > MAX_HOOKS:
        raise UnsafeCacheError(
            f"{len(raw['layers'])} layers and {len(raw['hooks'])} hooks over the bounds "
            f"{MAX_LAYERS} and {MAX_HOOKS}"
        )
    if not all(_is_int(v) for v in raw["layers"]) or not all(
        isinstance(h, str) for h in raw["hooks"]
    ):
        raise _Damaged("expected spec.layers as integers and spec.hooks as names")
    for field in ("fingerprint", "provenance"):
        if field in raw and not isinstance(raw[field], Mapping):
            raise _Damaged(f"expected spec.{field} as a JSON object, got {raw[field]!r:.100}")
    try:
        spec = spec_from_json(raw)
    except ActstoreError as exc:
        raise _Damaged(f"an invalid spec ({exc})") from exc
    except (TypeError, ValueError, KeyError) as exc:
        raise _Damaged(f"an invalid spec ({type(exc).__name__}: {exc})") from exc
    layout = info.get("layout")
    keys = ("block_size", "chunk_prompts", "n_blocks", "read_prompts")
    if not isinstance(layout, Mapping) or not all(
        _is_int(layout.get(k)) and layout[k] >= 1 for k in keys
    ):
        raise _Damaged(f"expected a layout with integers {keys} >= 1, got {layout!r:.200}")
    if layout["n_blocks"] > MAX_STORED_OBJECTS:
        raise UnsafeCacheError(f"{layout['n_blocks']} blocks over the bound {MAX_STORED_OBJECTS}")
    if layout["n_blocks"] != -(-spec.n_prompts // layout["block_size"]):
        raise _Damaged(
            f"expected layout.n_blocks = ceil(n_prompts / block_size) = "
            f"{-(-spec.n_prompts // layout['block_size'])}, got {layout['n_blocks']}"
        )
    if not isinstance(info.get("ready", False), bool):
        raise _Damaged(f"expected a bool ready flag, got {info.get('ready')!r:.50}")
    sizes = {
        "prompt": spec.n_prompts,
        "layer": len(spec.layers),
        "token": spec.n_tokens_max,
        "d_model": spec.d_model,
    }
    span = children.get("span")
    span_shape = span.get("shape") if isinstance(span, Mapping) else None
    if isinstance(span_shape, list) and span_shape and isinstance(span_shape[0], int):
        sizes["span"] = span_shape[0]
    for child, doc in sorted(children.items()):
        if not isinstance(doc, Mapping) or doc.get("node_type") != "array":
            continue
        shape = doc.get("shape")
        dims = doc.get("dimension_names") or []
        if (
            not isinstance(shape, list)
            or not isinstance(dims, list)
            or len(dims) != len(shape)
            or not all(isinstance(d, str | None) for d in dims)
        ):
            continue  # recorded as damaged by the array check
        if child == DONE_ARRAY:
            want = [layout["n_blocks"]]
            if shape != want:
                raise _Damaged(f"expected {child} of shape {want} (n_blocks), got {shape}")
            continue
        if child in spec.hooks and (tuple(dims) != ACT_DIMS or doc.get("data_type") != spec.dtype):
            raise _Damaged(
                f"expected {child} with dims {ACT_DIMS} and data type {spec.dtype!r} (the "
                f"spec), got dims {dims} and {doc.get('data_type')!r}"
            )
        for dim, size in zip(dims, shape):
            if dim in sizes and size != sizes[dim]:
                raise _Damaged(
                    f"expected array {child!r} of {dim} size {sizes[dim]} (from the spec), "
                    f"got {size}"
                )
