"""Real tokens of a prompt set as flat rows: which tokens, in what order, read chunk by chunk.

Shared by :class:`actstore.torch.ActivationLoader` and ``actstore export``; numpy only.

The plan
--------
* The **selection** is a ``(prompt, token)`` bool mask: real tokens (``token < n_tokens``), then
  optionally only some prompts, only the tokens of one span, and without a leading BOS token.
* A **unit** is the ``chunk_prompts`` prompts of one inner chunk (about 1 MiB per layer): the
  smallest read that decodes no byte twice. Units with no selected token are never read.
* A **window** is a run of units, in the epoch's unit order, holding at least ``buffer_tokens``
  selected tokens (fewer only for the last one). A window is read whole (all its units, every
  requested layer, concurrently), its rows are permuted, and then handed out in order. Windows
  never overlap, so every selected token appears exactly once per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from actstore.errors import (
    CorruptCacheError,
    IncompleteCacheError,
    InvalidArgumentError,
    UnknownNameError,
)

if TYPE_CHECKING:
    from actstore.store.core._cache import Cache

__all__ = ["DEFAULT_BUFFER_BYTES", "TokenPlan", "select_tokens"]

#: Default window size: selected rows of every requested layer, in the stored dtype.
DEFAULT_BUFFER_BYTES = 512 * 2**20
#: Padded bytes per layer read at once while filling a window (bounds the transient memory).
READ_BYTES = 16 * 2**20


def _prompt_mask(prompts: Any, n_prompts: int) -> np.ndarray:
    keep = np.zeros(n_prompts, dtype=bool)
    if isinstance(prompts, slice):
        if prompts.step == 0:
            raise InvalidArgumentError(
                f"expected a prompt slice with a non-zero step, got {prompts!r}"
            )
        keep[prompts] = True
        return keep
    idx = np.asarray(prompts)
    if idx.dtype == bool:
        if idx.shape != (n_prompts,):
            raise InvalidArgumentError(
                f"expected a bool prompt mask of shape ({n_prompts},), got {idx.shape}"
            )
        return idx.copy()
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise InvalidArgumentError(
            f"expected prompts as a slice, integer indices or a bool mask, got {prompts!r}"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= n_prompts):
        raise InvalidArgumentError(
            f"expected prompt indices in [0, {n_prompts}), got values in "
            f"[{idx.min()}, {idx.max()}]; pick prompts of this set"
        )
    keep[idx] = True
    return keep


def select_tokens(
    cache: Cache,
    prompt_set: str,
    *,
    prompts: Any = None,
    span: str | None = None,
    exclude_bos: bool = False,
) -> np.ndarray:
    """The ``(prompt, token)`` bool mask of the tokens to read.

    Parameters
    ----------
    prompts
        ``None`` (all), a slice, integer prompt indices or a ``(prompt,)`` bool mask.
    span
        ``"NAME"`` or ``"span:NAME"``: keep only tokens inside that named span.
    exclude_bos
        Drop position 0 where it holds the BOS token the extraction recorded. A set whose
        tokenizer has no BOS token loses nothing; a set with no BOS record is refused.

    Raises
    ------
    UnknownNameError
        An unknown span.
    InvalidArgumentError
        Bad prompt indices, or ``exclude_bos`` on a set without BOS information.
    """
    group = cache.group(prompt_set)
    spec = cache.spec(prompt_set)
    n_tokens = np.asarray(group["n_tokens"][:], dtype=np.int64)
    mask = np.arange(spec.n_tokens_max)[None, :] < n_tokens[:, None]
    if prompts is not None:
        mask &= _prompt_mask(prompts, spec.n_prompts)[:, None]
    if span is not None:
        name = span[len("span:") :] if span.startswith("span:") else span
        names = [str(s) for s in group["span"][:]]
        if name not in names:
            raise UnknownNameError(
                f"expected a span of prompt set {prompt_set!r} (one of {names}), got {name!r}"
            )
        mask &= np.asarray(group["span_mask"][:, names.index(name), :], dtype=bool)
    if exclude_bos:
        bos = spec.fingerprint.get("bos")
        if not isinstance(bos, dict) or "bos_token_id" not in bos:
            raise InvalidArgumentError(
                f"expected prompt set {prompt_set!r} to record its BOS handling (fingerprint "
                "'bos'), got none; select tokens with prompts=/span= instead of exclude_bos"
            )
        if bos["bos_token_id"] is not None:
            first = np.asarray(group["token_id"][:, 0], dtype=np.int64)
            mask[:, 0] &= first != int(bos["bos_token_id"])
    return mask


class TokenPlan:
    """Selected tokens of one hook of a prompt set, grouped into chunk-aligned units.

    Parameters
    ----------
    cache, prompt_set, hook
        What to read.
    layers
        Real layer indices to read, in the order the rows will hold them.
    mask
        ``(prompt, token)`` bool selection (see :func:`select_tokens`).

    Attributes
    ----------
    unit_prompts : int
        Prompts per unit (the inner chunk's prompt count).
    units : np.ndarray
        ``(unit,)`` indices of the units holding at least one selected token.
    counts : np.ndarray
        ``(unit,)`` selected tokens of each of :attr:`units`.
    n_rows : int
        Selected tokens in total.
    """

    def __init__(
        self,
        cache: Cache,
        prompt_set: str,
        *,
        hook: str,
        layers: Sequence[int],
        mask: np.ndarray,
    ) -> None:
        spec = cache.spec(prompt_set)
        if hook not in spec.hooks:
            raise UnknownNameError(
                f"expected a stored hook of prompt set {prompt_set!r} (one of "
                f"{list(spec.hooks)}), got {hook!r}"
            )
        bad = [la for la in layers if la not in spec.layers]
        if bad or not layers:
            raise UnknownNameError(
                f"expected layers of prompt set {prompt_set!r} (from {list(spec.layers)}), got "
                f"{list(layers)}; pick stored layers"
            )
        missing = cache.missing_blocks(prompt_set)
        if missing:
            raise IncompleteCacheError(
                f"expected a complete prompt set {prompt_set!r} of {cache.url!r}, got "
                f"{len(missing)} missing blocks (first {missing[:5]}), whose prompts would read "
                "as zeros; resume the extraction first"
            )
        self.cache = cache
        self.prompt_set = prompt_set
        self.hook = hook
        self.spec = spec
        self.layers = [int(la) for la in layers]
        self.layer_pos = np.array([spec.layers.index(la) for la in self.layers], dtype=np.int64)
        self.mask = mask
        self.array: zarr.Array = cache.group(prompt_set)[hook]  # type: ignore[assignment]
        self.unit_prompts = int(self.array.chunks[0])
        n_units = -(-spec.n_prompts // self.unit_prompts)
        per_prompt = mask.sum(axis=1)
        pad = n_units * self.unit_prompts - spec.n_prompts
        per_unit = np.concatenate([per_prompt, np.zeros(pad, dtype=per_prompt.dtype)])
        per_unit = per_unit.reshape(n_units, self.unit_prompts).sum(axis=1)
        self.units = np.flatnonzero(per_unit > 0)
        self.counts = per_unit[self.units].astype(np.int64)
        self.n_rows = int(self.counts.sum())

    @property
    def row_nbytes(self) -> int:
        """Bytes of one row (every requested layer) in the stored dtype."""
        return len(self.layers) * self.spec.d_model * self.spec.itemsize

    def unit_order(self, *, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
        """Positions into :attr:`units` in the epoch's order (a permutation when shuffling)."""
        if not shuffle:
            return np.arange(len(self.units))
        return np.random.default_rng([seed, epoch, 0]).permutation(len(self.units))

    def windows(self, order: np.ndarray, buffer_tokens: int) -> list[np.ndarray]:
        """Cut *order* into consecutive runs of at least *buffer_tokens* selected tokens."""
        out: list[np.ndarray] = []
        start, total = 0, 0
        counts = self.counts[order]
        for i, c in enumerate(counts):
            total += int(c)
            if total >= buffer_tokens:
                out.append(order[start : i + 1])
                start, total = i + 1, 0
        if start < len(order):
            out.append(order[start:])
        return out

    def read(
        self, positions: np.ndarray, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Read the selected rows of the units at *positions* (into :attr:`units`).

        *out*, a ``(layer, capacity, d_model)`` array of the stored dtype, is filled and a view
        of it returned when it is large enough: reusing one window buffer saves the page faults
        of fresh memory, which cost as much as the copy itself.

        Returns
        -------
        rows : np.ndarray
            ``(layer, row, d_model)`` in the stored dtype (layer-major: each layer's rows are
            contiguous), rows ordered by prompt then token.
        prompt, token : np.ndarray
            ``(row,)`` prompt index and token position of each row.

        Raises
        ------
        CorruptCacheError
            A chunk fails to decode (damaged bytes).
        """
        units = np.sort(self.units[np.asarray(positions, dtype=np.int64)])
        up, n = self.unit_prompts, self.spec.n_prompts
        # contiguous units merge into prompt ranges of at most ``step`` units each
        padded = up * self.spec.n_tokens_max * self.spec.d_model * self.spec.itemsize
        step = max(1, READ_BYTES // padded)
        breaks = np.flatnonzero(np.diff(units) != 1) + 1
        runs = [
            (int(r[i]) * up, min((int(r[min(i + step, len(r)) - 1]) + 1) * up, n))
            for r in np.split(units, breaks)
            for i in range(0, len(r), step)
        ]
        subs = [self.mask[a:b] for a, b in runs]
        counts = [int(m.sum()) for m in subs]
        n_rows = sum(counts)
        shape = (len(self.layers), n_rows, self.spec.d_model)
        if out is not None and out.dtype == self.array.dtype and out.shape[1] >= n_rows:
            rows = out[:, :n_rows]
        else:
            rows = np.empty(shape, dtype=self.array.dtype)
        bits = np.dtype(f"u{rows.dtype.itemsize}")
        raw = rows.view(bits)
        prompt = np.empty(n_rows, dtype=np.int64)
        token = np.empty(n_rows, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)])
        # read groups of runs of about READ_BYTES per layer concurrently: bounded transient memory
        groups: list[list[int]] = [[]]
        size = 0
        for k, (a, b) in enumerate(runs):
            if groups[-1] and size + (b - a) > step * up:
                groups.append([])
                size = 0
            groups[-1].append(k)
            size += b - a
        for group in groups:
            tmax = max(int(np.flatnonzero(subs[k].any(axis=0)).max()) + 1 for k in group)
            parts = self._fetch([runs[k] for k in group], tmax)
            for i, k in enumerate(group):
                m = subs[k][:, :tmax]
                at, stop = int(starts[k]), int(starts[k + 1])
                p_local, t = np.nonzero(m)
                flat = m.ravel()
                for j in range(len(self.layers)):
                    part = parts[i * len(self.layers) + j].reshape(-1, self.spec.d_model)
                    # as raw bits: numpy copies ml_dtypes' bfloat16 element by element
                    np.compress(flat, part.view(bits), axis=0, out=raw[j, at:stop])
                prompt[at:stop] = p_local + runs[k][0]
                token[at:stop] = t
        return rows, prompt, token

    def _fetch(self, runs: list[tuple[int, int]], tmax: int) -> list[np.ndarray]:
        """``(prompt, token, d_model)`` blocks of every (run, layer), read concurrently.

        zarr's orthogonal selection with integer arrays is orders of magnitude slower than
        plain slices, so each run and layer is one basic selection, all gathered at once.
        """
        import asyncio

        from actstore.store.format._zarr import async_array, sync

        aarr = async_array(self.array)
        sels = [
            (slice(a, b), int(lp), slice(0, tmax), slice(None))
            for a, b in runs
            for lp in self.layer_pos
        ]

        async def gather() -> list[Any]:
            return list(await asyncio.gather(*(aarr.getitem(s) for s in sels)))

        try:
            return [np.asarray(x) for x in sync(gather())]
        except Exception as exc:  # any decode failure means damaged bytes
            raise CorruptCacheError(
                f"expected intact data in {self.prompt_set}/{self.hook} of {self.cache.url!r}, "
                f"got {type(exc).__name__}: {exc} reading prompts {runs[0][0]}..{runs[-1][1] - 1}"
                f"; run `actstore verify {self.cache.url}` to list the damage"
            ) from exc
