"""``actstore info``: what a cache holds, how big it is, how complete, where it came from."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from actstore._locations import located
from actstore.store.core._cache import Cache
from actstore.store.core._entry import open_cache
from actstore.store.format._schema import ATTR_KEY, DONE_ARRAY, METADATA_VARS, human_bytes
from actstore.store.format._walk import array_dims
from actstore.store.format._zarr import sync

__all__ = ["cache_info", "format_info"]


def _size(cache: Cache, prefix: str) -> int:
    try:
        return int(sync(cache.store.getsize_prefix(prefix)))
    except (FileNotFoundError, NotImplementedError, ValueError):
        return 0


def _positions(cache: Cache, name: str) -> list[str]:
    """The materialised positions of prompt set *name* (docs/read-path.md), if complete."""
    from actstore.store.core._positions import stored_positions

    stored = stored_positions(cache, name) if cache.set_info(name).get("ready") else None
    return [] if stored is None else stored["positions"]


@located("read", "url")
def cache_info(
    url: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON-ready summary of the cache at *url* (what ``actstore info --json`` prints).

    Parameters
    ----------
    url
        Cache directory, ``.zip`` file or fsspec URL.
    storage_options
        fsspec options for a remote *url*.

    Returns
    -------
    dict
        ``url``, the cache's attributes, ``prompt_sets`` (per set: spec, layout, blocks done and
        missing, per hook shape, dims, dtype and stored bytes), the other ``groups`` and totals.

    Raises
    ------
    StoreNotFoundError
        Nothing at *url*.
    NotACacheError, SchemaVersionError
        Something that is not an actstore cache, or one of a newer schema.
    UnsafeCacheError
        Metadata that would make zarr run code or leave the cache (refused before reading).
    CorruptCacheError
        A prompt set whose metadata cannot be read (named, with the fix).
    """
    cache = open_cache(url, mode="r", storage_options=storage_options)
    out: dict[str, Any] = {"url": cache.url, **cache.attrs, "prompt_sets": {}, "groups": []}
    total = 0
    for name in cache.prompt_sets:
        cache.check_readable(name)  # damaged metadata is named, not tripped over
        info = cache.set_info(name)
        spec = info["spec"]
        group = cache.group(name)
        missing = cache.missing_blocks(name)
        hooks = {}
        for hook in spec["hooks"] if info.get("ready") else []:
            arr = group[hook]
            stored = _size(cache, f"{name}/{hook}")
            done_frac = 1 - len(missing) / max(1, info["layout"]["n_blocks"])
            raw = int(arr.nbytes * done_frac)
            hooks[hook] = {
                "shape": list(arr.shape),
                "dims": list(array_dims(arr)),
                "dtype": spec["dtype"],
                "chunks": list(arr.chunks),
                "shards": list(arr.shards or arr.chunks),
                "bytes_uncompressed": raw,
                "bytes_on_disk": stored,
                "compression_ratio": round(raw / stored, 3) if stored else None,
            }
        labels, derived = [], []
        for var, arr in group.arrays():
            if var in METADATA_VARS or var in spec["hooks"] or var == DONE_ARRAY:
                continue
            dims = array_dims(arr)
            (labels if dims == ("prompt",) and ATTR_KEY not in arr.attrs else derived).append(var)
        set_bytes = _size(cache, name)
        total += set_bytes
        out["prompt_sets"][name] = {
            "n_prompts": spec["n_prompts"],
            "layers": spec["layers"],
            "n_tokens_max": spec["n_tokens_max"],
            "d_model": spec["d_model"],
            "dtype": spec["dtype"],
            "hooks": hooks,
            "labels": sorted(labels),
            "spans": [str(s) for s in np.asarray(group["span"][:])] if "span" in group else [],
            "ready": bool(info.get("ready")),
            "derived": sorted(derived),
            "block_size": info["layout"]["block_size"],
            "n_blocks": info["layout"]["n_blocks"],
            "missing_blocks": missing,
            "complete": not missing,
            "bytes_on_disk": set_bytes,
            "positions": _positions(cache, name),
            "fingerprint": spec["fingerprint"],
            "provenance": spec["provenance"],
        }
    for name, _ in cache.root.groups():
        if name not in out["prompt_sets"]:
            cache.check_group_readable(name)
            out["groups"].append(name)
            total += _size(cache, name)
    out["bytes_on_disk"] = total
    out["complete"] = all(s["complete"] for s in out["prompt_sets"].values())
    return out


def format_info(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`cache_info` (what ``actstore info`` prints).

    Parameters
    ----------
    info
        The dict :func:`cache_info` returned.

    Returns
    -------
    str
        One line for the cache, then one block per prompt set.
    """
    lines = [
        f"cache {info['url']}  (schema {info['schema_version']}, created {info.get('created')}, "
        f"{human_bytes(info['bytes_on_disk'])} on disk, "
        f"{'complete' if info['complete'] else 'INCOMPLETE'})"
    ]
    for name, s in info["prompt_sets"].items():
        lines.append(
            f"  {name}: {s['n_prompts']} prompts x {len(s['layers'])} layers x "
            f"{s['n_tokens_max']} tokens x d_model {s['d_model']}, {s['dtype']}"
            + (" (actstore.open decodes it to float32)" if s["dtype"] == "bfloat16" else "")
        )
        lines.append(f"    layers: {s['layers']}")
        for hook, h in s["hooks"].items():
            ratio = h["compression_ratio"]
            lines.append(
                f"    {hook}: {human_bytes(h['bytes_on_disk'])} on disk, "
                f"{human_bytes(h['bytes_uncompressed'])} raw, compression "
                f"{'n/a' if ratio is None else f'{ratio:.2f}x'}; shard {h['shards']}, "
                f"chunk {h['chunks']}"
            )
        done = s["n_blocks"] - len(s["missing_blocks"])
        miss = "" if s["complete"] else f" (missing: {s['missing_blocks'][:20]})"
        lines.append(
            f"    blocks: {done}/{s['n_blocks']} complete, {s['block_size']} prompts each{miss}"
        )
        lines.append(
            f"    labels: {', '.join(s['labels']) or '-'}; spans: {', '.join(s['spans']) or '-'}"
        )
        if s["derived"]:
            lines.append(f"    derived: {', '.join(s['derived'])}")
        if s.get("positions"):
            lines.append(f"    positions (materialised): {', '.join(s['positions'])}")
        lines.append(f"    fingerprint: {json.dumps(s['fingerprint'], sort_keys=True)}")
        if s["provenance"]:
            lines.append(f"    provenance: {json.dumps(s['provenance'], sort_keys=True)}")
    if info["groups"]:
        lines.append(f"  other groups: {', '.join(info['groups'])}")
    if info.get("provenance"):
        lines.append(f"  provenance: {json.dumps(info['provenance'], sort_keys=True)}")
    return "\n".join(lines)
