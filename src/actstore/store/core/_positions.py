"""Materialised positions: the activations at a few positions per prompt, beside the full array.

A probe fitted at ``last`` or ``before:SPAN`` uses one token of each prompt, but the full activation
array is chunked ``(prompts, 1 layer, all tokens, d_model)``, so reading that token decodes every
token of the prompt. ``materialize_positions`` copies the rows of the named positions, byte for
byte, into a small group ``<prompt set>/positions``::

    positions/position      (position,)                        str, e.g. "last", "before:answer"
    positions/token_index   (prompt, position)                 int32, the token read; -1 = none
    positions/<hook>        (prompt, layer, position, d_model)  the hook's dtype, rows copied raw

``<hook>`` has the axis order of the full array (``position`` where it has ``token``), inner chunks
of ``(about 1 MiB of prompts, 1 layer, 1 position, d_model)`` and one shard per block of the prompt
set. A prompt where the position selects no token (span absent, only in padding, or ``before:SPAN``
at token 0) has ``token_index`` -1 and a zero row, which no reader selects.

Exactly once: the group is (re)created with ``complete: false`` in its attributes, every shard
is written, and only then is ``complete: true`` recorded. Readers use the group only when it is
complete and holds the requested position and hook, so a killed run leaves a group that is
ignored (reads fall back to the full array) and rewritten by the next run. Memory: one block of
the full array (one shard, ~128 MiB) plus its rows at the positions.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from actstore._validate import split_items
from actstore.errors import (
    IncompleteCacheError,
    InvalidArgumentError,
    SampleLossWarning,
    UnknownNameError,
)
from actstore.store.core._arrays import activation_compressors, meta_compressors, require_array
from actstore.store.core._consolidated import metadata_change
from actstore.store.format._layout import TARGET_CHUNK_BYTES
from actstore.store.format._schema import ATTR_KEY

if TYPE_CHECKING:
    from actstore.store.core._cache import Cache

__all__ = [
    "POSITIONS_GROUP",
    "materialize_positions",
    "parse_position_list",
    "stored_positions",
]

#: Name of the subgroup of a prompt set that holds materialised positions.
POSITIONS_GROUP = "positions"
#: Position kinds that select at most one token per prompt (the only ones materialised).
_ONE_TOKEN_KINDS = ("last", "before")


def parse_position_list(spec: str | Sequence[str]) -> list[str]:
    """Canonical position names from ``"last,before:answer"`` or a list; duplicates dropped.

    Raises
    ------
    InvalidArgumentError
        Neither a string nor a list, a malformed spec, an empty list, or a position that
        selects several tokens per prompt (``all``, ``span:SPAN``): only ``last`` and
        ``before:SPAN`` are materialised.
    """
    from actstore.prompts import parse_position

    if not isinstance(spec, str | Sequence):  # an int or a bool from TOML or a keyword
        raise InvalidArgumentError(
            f"expected positions as 'last,before:answer' or a list of names, got {spec!r}; "
            "e.g. --positions last"
        )
    items = (
        split_items(spec, "positions", "last,before:answer")
        if isinstance(spec, str)
        else list(spec)
    )
    out: list[str] = []
    for item in items:
        pos = parse_position(item.strip() if isinstance(item, str) else item)
        if pos.kind not in _ONE_TOKEN_KINDS:
            raise InvalidArgumentError(
                f"expected positions that select one token per prompt (last, before:SPAN), got "
                f"{str(pos)!r}; read {str(pos)!r} from the full activations instead"
            )
        if str(pos) not in out:
            out.append(str(pos))
    if not out:
        raise InvalidArgumentError(
            f"expected at least one position such as 'last,before:answer', got {spec!r}"
        )
    return out


def _token_index(group: zarr.Group, prompt_set: str, positions: list[str]) -> np.ndarray:
    """``(prompt, position)`` int32 token read at each position, -1 where it selects none."""
    from actstore.prompts import parse_position

    n_tokens = np.asarray(group["n_tokens"][:], dtype=np.int64)
    names = [str(s) for s in np.asarray(group["span"][:])]
    span_mask = np.asarray(group["span_mask"][:], dtype=bool)
    masks = {name: span_mask[:, i, :] for i, name in enumerate(names)}
    out = np.full((len(n_tokens), len(positions)), -1, dtype=np.int32)
    for j, name in enumerate(positions):
        pos = parse_position(name)
        if pos.span is not None and pos.span not in masks:
            raise UnknownNameError(
                f"expected a span of prompt set {prompt_set!r} ({', '.join(names) or 'none'}), "
                f"got {pos.span!r} in position {name!r}; use one of those or 'last'"
            )
        mask = pos.token_mask(n_tokens, masks)
        has = mask.any(axis=1)
        refuse_if_empty(name, has, prompt_set)
        if not has.all():
            lost = np.flatnonzero(~has)
            shown = ", ".join(str(int(p)) for p in lost[:5]) + (", ..." if lost.size > 5 else "")
            warnings.warn(
                SampleLossWarning(
                    f"position {name!r} selects no token in {lost.size} of {len(n_tokens)} "
                    f"prompts of {prompt_set!r} (e.g. prompts {shown}): their rows are left empty "
                    "(token_index -1) and no probe reads them"
                ),
                stacklevel=3,
            )
        out[has, j] = mask.argmax(axis=1)[has]
    return out


def refuse_if_empty(name: str, has: np.ndarray, prompt_set: str) -> None:
    """Refuse position *name* when ``has`` (``(prompt,)`` bool: it selects a token) is all False."""
    if not has.any():
        from actstore.prompts import parse_position

        raise InvalidArgumentError(
            f"expected position {name!r} to select a token in some prompt of {prompt_set!r}, "
            f"got none in all {len(has)} prompts; check where span "
            f"{parse_position(name).span!r} lies"
        )


def materialize_positions(
    cache: Cache,
    prompt_set: str,
    positions: str | Sequence[str],
    *,
    hooks: Sequence[str] | None = None,
    add: bool = False,
) -> dict[str, Any]:
    """Write the activations at ``positions`` into ``<prompt_set>/positions`` (see module doc).

    Parameters
    ----------
    cache : Cache
        Opened with ``mode="r+"``.
    prompt_set : str
        A complete prompt set of the cache.
    positions : str or sequence of str
        ``"last,before:answer"`` or ``["last", "before:answer"]``: ``last`` / ``before:SPAN`` only.
    hooks : sequence of str, optional
        Hooks to materialise (default: every stored hook).
    add : bool
        Keep the positions already stored (write the union), and write nothing when they cover
        ``positions`` and the hooks already (what ``extract --positions`` does, so concurrent
        ``--shard`` workers finishing together write the group once).

    Returns
    -------
    dict
        ``positions``, ``hooks``, ``n_prompts``, ``bytes`` (uncompressed) and ``written``.

    Raises
    ------
    IncompleteCacheError
        The prompt set has blocks not written yet (materialise after the extraction finished).
    UnknownNameError
        An unknown prompt set, span or hook.
    InvalidArgumentError
        A malformed position, one selecting several tokens, or one selecting no token at all;
        a stored variable already named ``positions``.
    ReadOnlyError
        The cache was opened read-only.

    Warns
    -----
    SampleLossWarning
        A position selects no token in some prompts (their rows stay empty), with the count.
    """
    cache.check_writable()
    names = parse_position_list(positions)
    group = cache.group(prompt_set)
    spec = cache.spec(prompt_set)
    missing = cache.missing_blocks(prompt_set)
    if missing:
        raise IncompleteCacheError(
            f"expected a complete prompt set, got {prompt_set!r} of {cache.url} with "
            f"{len(missing)} block(s) missing (e.g. {missing[:5]}); finish the extraction, then "
            "materialise positions"
        )
    wanted = list(spec.hooks) if hooks is None else list(hooks)
    bad = [h for h in wanted if h not in spec.hooks]
    if bad or not wanted:
        raise UnknownNameError(
            f"expected hooks among the stored {list(spec.hooks)}, got {bad or wanted}; pass "
            "stored hooks"
        )
    if POSITIONS_GROUP in group and isinstance(group[POSITIONS_GROUP], zarr.Array):
        raise InvalidArgumentError(
            f"expected no variable named {POSITIONS_GROUP!r} in prompt set {prompt_set!r}, got "
            "one (a label?); copy the set without it to materialise positions"
        )
    block = int(cache.set_info(prompt_set)["layout"]["block_size"])
    target = max(1, TARGET_CHUNK_BYTES // (spec.d_model * spec.itemsize))
    chunk_p = max(c for c in range(1, min(target, block) + 1) if block % c == 0)
    with _set_lock(cache, prompt_set):  # one writer at a time on a local cache
        stored = stored_positions(cache, prompt_set) if add else None
        if stored is not None:
            if set(names) <= set(stored["positions"]) and set(wanted) <= set(stored["hooks"]):
                kept = {"positions": stored["positions"], "hooks": stored["hooks"]}
                return {**kept, "n_prompts": spec.n_prompts, "bytes": 0, "written": False}
            names = stored["positions"] + [p for p in names if p not in stored["positions"]]
            wanted = stored["hooks"] + [h for h in wanted if h not in stored["hooks"]]
        token_index = _token_index(group, prompt_set, names)
        # consolidated metadata is removed first and rewritten after (also after a failure)
        with metadata_change(cache, prompt_set):
            raw = _write_group(cache, prompt_set, spec, names, wanted, token_index, chunk_p, block)
    return {
        "positions": names,
        "hooks": wanted,
        "n_prompts": spec.n_prompts,
        "bytes": raw,
        "written": True,
    }


@contextlib.contextmanager
def _set_lock(cache: Cache, prompt_set: str) -> Iterator[None]:
    """An exclusive ``flock`` on the prompt set's directory of a local cache; else nothing."""
    from actstore.store.format._storage import directory_lock, is_local, is_zip

    path = Path(cache.url) / prompt_set
    if not (is_local(cache.url) and not is_zip(cache.url) and path.is_dir()):
        yield
        return
    with directory_lock(path):
        yield


def _write_group(
    cache: Cache,
    prompt_set: str,
    spec: Any,
    names: list[str],
    wanted: list[str],
    token_index: np.ndarray,
    chunk_p: int,
    block: int,
) -> int:
    """Recreate ``<prompt_set>/positions`` (incomplete), write it, mark it complete; raw bytes."""
    group = cache.group(prompt_set)
    layout = cache.set_info(prompt_set)["layout"]
    n, n_layers, d, n_pos = spec.n_prompts, len(spec.layers), spec.d_model, len(names)
    info = {"kind": "positions", "complete": False, "positions": names, "hooks": wanted}
    # mode "w" drops whatever an earlier (maybe killed) run left; "complete" is recorded last
    out = zarr.open_group(
        store=cache.store, path=f"{prompt_set}/{POSITIONS_GROUP}", mode="w", zarr_format=3
    )
    out.attrs[ATTR_KEY] = info
    pos_arr = require_array(
        out, "position", shape=(n_pos,), dtype=str, chunks=(n_pos,), dims=("position",)
    )
    pos_arr[...] = np.asarray(names, dtype=object)
    ti = require_array(
        out,
        "token_index",
        shape=(n, n_pos),
        dtype=np.int32,
        chunks=(max(1, min(n, int(layout["read_prompts"]))), n_pos),
        dims=("prompt", "position"),
        compressors=meta_compressors(),
        fill_value=-1,
    )
    ti[...] = token_index
    raw = 0
    for hook in wanted:
        src = group[hook]
        dst = require_array(
            out,
            hook,
            shape=(n, n_layers, n_pos, d),
            dtype=src.dtype,
            chunks=(chunk_p, 1, 1, d),
            shards=(block, n_layers, n_pos, d),
            dims=("prompt", "layer", "position", "d_model"),
            compressors=activation_compressors(spec.itemsize),
            fill_value=0,
            attributes={"hook": hook, "positions": names},
        )
        for s0 in range(0, n, block):
            s1 = min(s0 + block, n)
            full = src[s0:s1]  # one shard: (prompts, layer, token, d_model), raw dtype
            idx = token_index[s0:s1]
            rows = np.zeros((s1 - s0, n_layers, n_pos, d), dtype=full.dtype)
            for j in range(n_pos):
                has = np.flatnonzero(idx[:, j] >= 0)
                rows[has, :, j, :] = full[has, :, idx[has, j], :]
            dst[s0:s1] = rows  # a shard-aligned slice: one whole shard per put
            raw += rows.nbytes
    info["complete"] = True
    out.attrs[ATTR_KEY] = info
    return raw


def stored_positions(cache: Cache, prompt_set: str) -> dict[str, Any] | None:
    """The record of *prompt_set*'s materialised positions (see :func:`materialize_positions`).

    Parameters
    ----------
    cache
        An open cache.
    prompt_set
        A prompt set of *cache*.

    Returns
    -------
    dict or None
        ``positions`` (the position names, in stored order), ``hooks`` (the hooks stored) and
        ``group`` (the ``positions`` zarr group, arrays ``(prompt, layer, position, d_model)``);
        ``None`` when the prompt set has no positions group or its writing never finished (a
        killed run): readers then use the full activations.

    Raises
    ------
    UnknownNameError
        *prompt_set* is not a prompt set of *cache*.
    """
    group = cache.group(prompt_set)
    try:
        node = group[POSITIONS_GROUP]
    except KeyError:
        return None
    if not isinstance(node, zarr.Group):
        return None
    info = node.attrs.get(ATTR_KEY)
    if not isinstance(info, dict) or info.get("kind") != "positions" or not info.get("complete"):
        return None
    return {"positions": list(info["positions"]), "hooks": list(info["hooks"]), "group": node}


def drop_positions(cache: Cache, prompt_set: str) -> list[str]:
    """Delete ``<prompt_set>/positions`` (marked incomplete first); returns the prefix or ``[]``.

    For ``actstore repair``: once a block is unrecorded (to be rewritten) or a positions chunk is
    damaged, the group may no longer match the activations; materialise it again afterwards.
    """
    from actstore.store.format._zarr import sync

    prefix = f"{prompt_set}/{POSITIONS_GROUP}"
    if not sync(cache.store.exists(f"{prefix}/zarr.json")):
        return []
    with metadata_change(cache, prompt_set):
        try:
            node = zarr.open_group(store=cache.store, path=prefix, mode="r+", zarr_format=3)
            info = dict(node.attrs.get(ATTR_KEY) or {})
            node.attrs[ATTR_KEY] = {**info, "complete": False}
        except Exception:  # damaged group metadata: deleting it below is the repair
            pass
        sync(cache.store.delete_dir(prefix))
    return [f"{prefix}/"]


def positions_prompt_set(key: str, prompt_sets: Sequence[str]) -> str | None:
    """The prompt set whose positions group holds store key *key* (``set/positions/...``)."""
    parts = key.split("/")
    if len(parts) >= 3 and parts[0] in prompt_sets and parts[1] == POSITIONS_GROUP:
        return parts[0]
    return None


def copy_positions(source: Cache, target: Cache, prompt_set: str) -> bool:
    """Materialise in *target* the positions *source* holds for *prompt_set* (after a copy).

    Re-derived from the target's own activations (a subset has other prompts and layers), only
    when the target set is complete. Returns whether anything was written.
    """
    stored = stored_positions(source, prompt_set)
    if stored is None or target.missing_blocks(prompt_set):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleLossWarning)  # said when first materialised
        materialize_positions(target, prompt_set, stored["positions"], hooks=stored["hooks"])
    return True
