"""``ActivationLoader``: a shuffled, resumable stream of real-token activation rows for torch."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from actstore.errors import InvalidArgumentError
from actstore.store import BFLOAT16
from actstore.store.core import DEFAULT_BUFFER_BYTES, TokenPlan, select_tokens
from actstore.torch._args import check_device, check_layers, check_seed
from actstore.torch._schedule import StreamSchedule, consumed_per_worker

__all__ = ["ActivationLoader"]

_STATE_VERSION = 1
_NUMPY_DTYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64}


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidArgumentError(f"expected {name} to be an integer >= 1, got {value!r}")
    return int(value)


class ActivationLoader(IterableDataset):
    """Batches of per-token activations of one prompt set, real tokens only, shuffled.

    Iterating yields one epoch of ``torch.Tensor`` batches: ``(batch, d_model)`` when built with
    ``layer=``, ``(batch, n_layers, d_model)`` with ``layers=`` (or neither: every stored layer).
    Every selected token appears exactly once per epoch; padding never appears.

    Parameters
    ----------
    url
        Cache path, ``.zip`` or fsspec URL (``s3://...``).
    prompt_set
        The prompt set to read; may be omitted when the cache has only one.
    layers, layer
        Real layer indices (``layers=[7, 15]``) or one layer (``layer=15``); not both.
    hook
        Activation variable (``"resid_post"``).
    batch_size
        Rows per batch; the last batch of an epoch (per DataLoader worker) may be smaller.
    shuffle, seed
        Shuffle (default) reproducibly from ``(seed, epoch)``; ``shuffle=False`` streams prompts
        in order, tokens in order.
    buffer_tokens
        Shuffle-window size in tokens: the stream reads windows of whole inner chunks holding at
        least this many selected tokens, from random places in the set, and permutes each window.
        Memory: one window buffer per process of about ``(buffer_tokens + tokens of one chunk)
        * n_layers * d_model`` values in the stored dtype, kept across windows and epochs, plus
        ~16 MiB per layer of padded reads in flight. Default: a 512 MiB buffer.
    device, dtype
        Where and in which dtype batches are returned (conversion happens on the CPU).
    drop_last
        Drop the final partial batch of each stream (its tokens are skipped this epoch).
    prompts
        Only these prompts: a slice, integer indices or a bool mask.
    span
        Only tokens inside this named span (``"answer"`` or ``"span:answer"``).
    exclude_bos
        Leave out a leading BOS token (needs the set's recorded BOS handling).
    storage_options
        fsspec options for URLs (credentials, endpoint).
    progress
        Show progress of each epoch in tokens (main process only): a tqdm bar on a terminal,
        a log line every 10 s otherwise. Off by default.

    Raises
    ------
    InvalidArgumentError, UnknownNameError, IncompleteCacheError
        Bad arguments, unknown names, or a prompt set with missing blocks.
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        prompt_set: str | None = None,
        *,
        layers: Sequence[int] | None = None,
        layer: int | None = None,
        hook: str = "resid_post",
        batch_size: int = 4096,
        shuffle: bool = True,
        seed: int = 0,
        buffer_tokens: int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        drop_last: bool = False,
        prompts: Any = None,
        span: str | None = None,
        exclude_bos: bool = False,
        storage_options: dict[str, Any] | None = None,
        progress: bool = False,
    ) -> None:
        from actstore.store import open_cache

        super().__init__()
        wanted = check_layers(layers, layer)
        seed, device = check_seed(seed), check_device(device)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise InvalidArgumentError(
                f"expected a floating torch dtype such as torch.float32, got {dtype!r}"
            )
        self.url = url
        self.storage_options = storage_options
        cache = open_cache(url, storage_options=storage_options)
        if prompt_set is None:
            if len(cache.prompt_sets) != 1:
                raise InvalidArgumentError(
                    f"expected prompt_set= for a cache with prompt sets {cache.prompt_sets}, "
                    "got none; name one"
                )
            prompt_set = cache.prompt_sets[0]
        spec = cache.spec(prompt_set)
        self.prompt_set = prompt_set
        self.squeeze = layer is not None
        self.layers = wanted if wanted is not None else list(spec.layers)
        self.hook = hook
        self.batch_size = _positive_int("batch_size", batch_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.drop_last = bool(drop_last)
        self.filters = {"prompts": prompts, "span": span, "exclude_bos": bool(exclude_bos)}
        self.progress = progress
        plan = self._make_plan(cache)
        if buffer_tokens is None:
            buffer_tokens = max(self.batch_size, DEFAULT_BUFFER_BYTES // plan.row_nbytes)
        self.buffer_tokens = _positive_int("buffer_tokens", buffer_tokens)
        self.n_tokens = plan.n_rows
        if self.n_tokens == 0:
            raise InvalidArgumentError(
                f"expected the filters to select at least one token of prompt set "
                f"{prompt_set!r}, got 0 after prompts=, span= and exclude_bos=; widen the selection"
            )
        self.d_model = spec.d_model
        self._plan: TokenPlan | None = plan
        self._buffer: np.ndarray | None = None
        self._pid = os.getpid()
        self.epoch = 0
        self._streams = 1
        self._batches = 0

    def _make_plan(self, cache: Any = None) -> TokenPlan:
        from actstore.store import open_cache

        if cache is None:  # a fresh process (DataLoader worker): reopen, sharing no handles
            cache = open_cache(self.url, storage_options=self.storage_options)
        mask = select_tokens(cache, self.prompt_set, **self.filters)
        return TokenPlan(cache, self.prompt_set, hook=self.hook, layers=self.layers, mask=mask)

    def plan(self) -> TokenPlan:
        """The token plan, reopened once in each new process."""
        if self._plan is None or self._pid != os.getpid():
            self._plan = self._make_plan()
            self._pid = os.getpid()
        return self._plan

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_plan"] = None  # open zarr handles stay in their process
        state["_buffer"] = None
        return state

    def __repr__(self) -> str:
        return (
            f"<ActivationLoader {self.url!s} set={self.prompt_set!r} hook={self.hook!r} "
            f"layers={self.layers} tokens={self.n_tokens} batch_size={self.batch_size} "
            f"epoch={self.epoch}>"
        )

    # -- epochs and state -------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Start epoch *epoch* (its own reproducible order) at its beginning."""
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise InvalidArgumentError(f"expected an epoch >= 0, got {epoch!r}")
        self.epoch = int(epoch)
        self._batches = 0

    def state_dict(self) -> dict[str, Any]:
        """Where the stream stands: seed, epoch, streams (DataLoader workers) and batches taken."""
        return {
            "version": _STATE_VERSION,
            "seed": self.seed,
            "epoch": self.epoch,
            "streams": self._streams,
            "batches": self._batches,
            "n_tokens": self.n_tokens,
            "batch_size": self.batch_size,
            "buffer_tokens": self.buffer_tokens,
            "shuffle": self.shuffle,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next iteration continues mid-epoch.

        Raises
        ------
        InvalidArgumentError
            A state from a loader that would order tokens differently (other token count,
            batch size, window size or shuffle), or a malformed state.
        """
        try:
            version = state["version"]
            fixed = {k: state[k] for k in ("n_tokens", "batch_size", "buffer_tokens", "shuffle")}
            seed, epoch = int(state["seed"]), int(state["epoch"])
            streams, batches = int(state["streams"]), int(state["batches"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"expected a state from ActivationLoader.state_dict(), got {state!r}; pass it as "
                "saved"
            ) from exc
        if version != _STATE_VERSION:
            raise InvalidArgumentError(f"expected state version {_STATE_VERSION}, got {version!r}")
        mine = {k: v for k, v in self.state_dict().items() if k in fixed}
        for key, value in fixed.items():
            if mine[key] != value:
                raise InvalidArgumentError(
                    f"expected a state of a loader with {key}={mine[key]!r}, got {value!r}; "
                    "build the loader with the same arguments to resume"
                )
        if streams < 1 or batches < 0:
            raise InvalidArgumentError(f"expected streams >= 1 and batches >= 0, got {state!r}")
        self.seed, self.epoch, self._streams, self._batches = seed, epoch, streams, batches

    # -- iteration ----------------------------------------------------------------------------

    def schedule(self, streams: int) -> StreamSchedule:
        """The epoch's windows dealt round-robin to *streams* streams (DataLoader workers)."""
        plan = self.plan()
        order = plan.unit_order(shuffle=self.shuffle, seed=self.seed, epoch=self.epoch)
        return StreamSchedule(
            plan.windows(order, self.buffer_tokens),
            plan.counts,
            streams=streams,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
        )

    def __len__(self) -> int:
        """Batches in one epoch with one stream (no DataLoader workers)."""
        return self.schedule(1).n_batches[0]

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        streams, me = (1, 0) if info is None else (info.num_workers, info.id)
        if self._batches and streams != self._streams:
            raise InvalidArgumentError(
                f"expected to resume with {self._streams} DataLoader worker(s) as saved, got "
                f"{streams}; resume with the same num_workers"
            )
        sched = self.schedule(streams)
        consumed, first = consumed_per_worker(sched.n_batches, self._batches)
        me = (me + first) % streams  # a resumed DataLoader restarts its cycle at worker 0
        skip = consumed[me]
        if info is None:
            self._streams = 1
        bar = self._bar(sched, skip) if info is None else None
        try:
            for batch in self._stream(sched, me, skip):
                if info is None:
                    self._batches += 1
                    if bar is not None:
                        bar.update(len(batch))
                yield batch
        finally:
            if bar is not None:
                bar.close()
        if info is None:
            self._batches = 0  # the epoch is done: the next iteration starts it again

    def _bar(self, sched: StreamSchedule, skip: int) -> Any:
        if not self.progress:
            return None
        from actstore.store.ops import Progress

        bar = Progress(sched.n_rows[0], f"epoch {self.epoch}", quiet=False, what="loader")
        bar.update(min(skip * self.batch_size, sched.n_rows[0]))
        return bar

    def _stream(self, sched: StreamSchedule, me: int, skip: int) -> Iterator[torch.Tensor]:
        plan = self.plan()
        start = skip * self.batch_size
        pending: list[torch.Tensor] = []
        n_pending = 0
        offset = 0  # rows of this stream before the current window
        for w in sched.stream_windows(me):
            positions = sched.windows[w]
            size = int(plan.counts[positions].sum())
            if offset + size <= start:
                offset += size
                continue
            rows, _, _ = plan.read(positions, out=self._window_buffer(sched))
            perm = self._window_perm(w, size)
            i = max(0, start - offset)
            offset += size
            while i < size:
                take = min(self.batch_size - n_pending, size - i)
                pending.append(self._convert(rows, perm[i : i + take]))
                n_pending += take
                i += take
                if n_pending == self.batch_size:
                    yield self._finish(pending)
                    pending, n_pending = [], 0
        if n_pending and not self.drop_last:
            yield self._finish(pending)

    def _window_buffer(self, sched: StreamSchedule) -> np.ndarray:
        """One window buffer per process, kept across windows and epochs (see the memory rule)."""
        plan = self.plan()
        need = max((int(plan.counts[w].sum()) for w in sched.windows), default=0)
        buf = self._buffer
        if buf is None or buf.shape[1] < need:
            shape = (len(self.layers), need, self.d_model)
            buf = self._buffer = np.empty(shape, dtype=plan.array.dtype)
        return buf

    def _window_perm(self, w: int, size: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(size)
        return np.random.default_rng([self.seed, self.epoch, 1, w]).permutation(size)

    def _convert(self, rows: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        """Rows *idx* of a layer-major window ``(layer, row, d_model)`` as ``(batch, [layer,]
        d_model)`` in the output dtype."""
        target = _NUMPY_DTYPES.get(self.dtype)
        n_layers = rows.shape[0]
        if target is not None:  # ml_dtypes widens bfloat16 ~10x faster than torch
            out = np.empty((len(idx), n_layers, rows.shape[2]), dtype=target)
            for j in range(n_layers):
                out[:, j] = rows[j, idx]
            tensor = torch.from_numpy(out)
        else:
            part = np.ascontiguousarray(rows[:, idx].transpose(1, 0, 2))
            if part.dtype == BFLOAT16:
                tensor = torch.from_numpy(part.view(np.int16)).view(torch.bfloat16)
            else:
                tensor = torch.from_numpy(part)
            tensor = tensor.to(self.dtype)
        return tensor[:, 0] if self.squeeze else tensor

    def _finish(self, parts: list[torch.Tensor]) -> torch.Tensor:
        batch = parts[0] if len(parts) == 1 else torch.cat(parts)
        return batch.to(self.device) if batch.device != self.device else batch

    # -- DataLoader ---------------------------------------------------------------------------

    def dataloader(self, num_workers: int = 0, **kwargs: Any) -> TrackedDataLoader:
        """A :class:`torch.utils.data.DataLoader` over this loader that keeps :meth:`state_dict`
        true in the main process with several workers (``batch_size=None``: batches come ready).

        Each worker streams its own share of the epoch's windows; together they yield every
        selected token once. Resuming needs the same ``num_workers``.
        """
        return TrackedDataLoader(self, num_workers=num_workers, **kwargs)


class TrackedDataLoader:
    """Iterate a DataLoader over an :class:`ActivationLoader`, counting batches it hands out."""

    def __init__(self, loader: ActivationLoader, *, num_workers: int, **kwargs: Any) -> None:
        from torch.utils.data import DataLoader

        if kwargs.get("in_order", True) is not True:
            raise InvalidArgumentError(
                "expected in_order=True (the default), got False; resuming needs the "
                "DataLoader's round-robin order"
            )
        self.loader = loader
        self.num_workers = int(num_workers)
        self._dl = DataLoader(loader, batch_size=None, num_workers=self.num_workers, **kwargs)

    def __len__(self) -> int:
        return sum(self.loader.schedule(max(1, self.num_workers)).n_batches)

    def __iter__(self) -> Iterator[torch.Tensor]:
        loader = self.loader
        if self.num_workers == 0:  # iterates in this process: the loader counts itself
            yield from self._dl
            return
        if loader._batches and loader._streams != self.num_workers:
            raise InvalidArgumentError(
                f"expected to resume with {loader._streams} DataLoader worker(s) as saved, got "
                f"{self.num_workers}; resume with the same num_workers"
            )
        loader._streams = self.num_workers
        for batch in self._dl:
            loader._batches += 1
            yield batch
        loader._batches = 0
