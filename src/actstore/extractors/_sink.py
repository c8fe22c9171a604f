"""The writer thread: device-to-host copies and zarr writes overlap the next batches' compute.

The main thread runs forward passes and hands each batch's captured tensors to :class:`BlockSink`
(on CUDA the device-to-host copy is queued on a side stream into pinned memory, so it overlaps the
next forward pass). The writer thread scatters each batch's rows into its block buffer; when the
last batch of a block arrives it hands the block to a block-write thread and goes on with the
next block's batches. A block-write thread calls ``write_block`` (which records completion only
after the write returns) with a ``prepare`` step that zeroes the padding and checks finiteness of
each inner chunk on the store's encode pool, right before that chunk is compressed: the scatter,
the checks and the encoding all run off the main thread, the encoding on every core. Two blocks
are written at once (one's store write overlaps the next one's encoding). A batch may hold rows of
several blocks of one batching window (:mod:`~actstore.extractors._batching`): rows are counted
per block, and the blocks of a window, which complete together, wait for their writes while the
next window is assembled. The queue is bounded, so host memory is at most two windows of block
buffers (three blocks for a window of one) plus a few batches, whatever the number of prompts.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from actstore.errors import ActstoreError, DiskFullError, ExtractionError
from actstore.extractors._batching import Batch
from actstore.extractors._torchutil import to_numpy
from actstore.store.format import is_disk_full

__all__ = ["BlockSink"]

_DONE = object()


def _nonfinite(buf: np.ndarray) -> np.ndarray | None:
    """``(prompt, layer)`` mask of rows holding NaN or inf, or None when all are finite."""
    if buf.dtype.itemsize == 2 and buf.dtype != np.float16:  # bfloat16: exponent bits all set
        bits = buf.view(np.uint16)
        mask = (bits & 0x7F80) == 0x7F80
    else:
        mask = ~np.isfinite(buf)
    if not mask.any():
        return None
    return mask.reshape(*mask.shape[:2], -1).any(axis=2)


class BlockSink:
    """Assemble batches into blocks on a background thread and write each block once.

    Parameters
    ----------
    write_block
        ``write_block(b, {hook: array (prompt, layer, token, d_model)}, prepare)``, as
        :meth:`actstore.store.PromptSetWriter.write_block`.
    block_ranges
        ``b -> (start, stop)`` prompt indices of each block this process writes. A block is
        written once all its ``stop - start`` rows have arrived; rows of other blocks in a batch
        (a window's blocks written by an earlier run) are dropped.
    n_tokens
        ``(prompt,)`` real lengths (padding positions are stored as zeros).
    hooks, layers, n_tokens_max, widths, torch_dtype
        Shape and dtype of the stored arrays.
    on_block
        Called on the block-write thread after each block write: ``on_block(b, nbytes)``.
    max_queue
        Batches waiting for the writer before the main thread blocks (back-pressure).
    max_writes
        Blocks written at once (each records its own completion): one block's store write
        overlaps the next one's encoding.
    window
        Blocks per batching window. The blocks of a window complete together, so up to
        ``max(max_writes, window)`` finished blocks wait for their write while the next window
        is assembled: host memory holds at most ``window + max(max_writes, window)`` block
        buffers plus ``max_queue`` batches, whatever the number of prompts.
    """

    def __init__(
        self,
        *,
        write_block: Callable[..., None],
        block_ranges: Mapping[int, tuple[int, int]],
        n_tokens: np.ndarray,
        hooks: Sequence[str],
        layers: Sequence[int],
        n_tokens_max: int,
        widths: Mapping[str, int],
        torch_dtype: torch.dtype,
        on_block: Callable[[int, int], None] | None = None,
        max_queue: int = 2,
        max_writes: int = 2,
        window: int = 1,
    ) -> None:
        self._write_block = write_block
        self._ranges = dict(block_ranges)
        #: rows of each block still to arrive
        self._left = {b: stop - start for b, (start, stop) in self._ranges.items()}
        self._n_tokens = n_tokens
        self._hooks = tuple(hooks)
        self._layers = tuple(layers)
        self._t_max = n_tokens_max
        self._widths = dict(widths)
        self._dtype = torch_dtype
        self._on_block = on_block
        self._np_dtype = to_numpy(torch.zeros(1, dtype=torch_dtype)).dtype
        self._bufs: dict[int, dict[str, np.ndarray]] = {}
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._max_queue = max_queue
        self._copy_stream: Any = None
        self.error: BaseException | None = None
        self.blocks_written: list[int] = []
        self._max_writes = max(1, int(max_writes))
        #: finished blocks that may wait for their write (a whole window completes at once)
        self._max_pending = max(self._max_writes, int(window))
        self._finisher = ThreadPoolExecutor(
            self._max_writes, thread_name_prefix="actstore-block-write"
        )
        self._pending: collections.deque[Future[None]] = collections.deque()
        #: seconds the writer thread waited for the previous block's write (disk/encode bound)
        self.write_wait = 0.0
        self._thread = threading.Thread(target=self._run, name="actstore-writer", daemon=True)
        self._thread.start()

    def queue_depth(self) -> tuple[int, int]:
        """``(waiting, bound)``: batches waiting for the writer thread plus blocks being
        written, and the most there can be before the main thread blocks.

        At the bound the writer is the bottleneck (disk or encoding); near zero, the model is.
        """
        return self._queue.qsize() + len(self._pending), self._max_queue + self._max_pending

    # -- main thread ---------------------------------------------------------------------------
    def submit(self, batch: Batch, captured: Mapping[str, Sequence[torch.Tensor]]) -> None:
        """Queue one batch (``hook -> [tensor (batch, token, width) per layer]``)."""
        self.raise_if_failed()
        want_rows = (len(batch.indices), batch.seq_len)
        for h in self._hooks:
            for layer, t in zip(self._layers, captured[h]):
                if tuple(t.shape) != (*want_rows, self._widths[h]):
                    raise ExtractionError(
                        f"expected {h} of layer {layer} shaped (batch, token, width) = "
                        f"{(*want_rows, self._widths[h])}, got {tuple(t.shape)}; nothing of "
                        "this block was written: this layout is not supported by this backend"
                    )
        host, event = self._to_host(captured)
        while True:
            try:
                self._queue.put((batch, host, event), timeout=0.5)
                return
            except queue.Full:
                self.raise_if_failed()

    def _to_host(self, captured: Mapping[str, Sequence[torch.Tensor]]) -> tuple[Any, Any]:
        first = next(iter(captured.values()))[0]
        if first.device.type != "cuda":
            return captured, None
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(device=first.device)
        stream = self._copy_stream
        stream.wait_stream(torch.cuda.current_stream(first.device))
        out: dict[str, list[torch.Tensor]] = {}
        with torch.cuda.stream(stream):
            for h, ts in captured.items():
                hs = []
                for t in ts:
                    if t.device != first.device:  # device_map across GPUs: plain copy
                        hs.append(t.to("cpu"))
                        continue
                    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
                    host.copy_(t, non_blocking=True)
                    t.record_stream(stream)  # keep the device memory until the copy is done
                    hs.append(host)
                out[h] = hs
        event = torch.cuda.Event()
        event.record(stream)
        return out, event

    def raise_if_failed(self) -> None:
        if self.error is None:
            return
        exc = self.error
        if isinstance(exc, ActstoreError):
            raise exc
        if is_disk_full(exc):
            raise DiskFullError(
                f"expected free space to write the cache, got a full disk ({exc}); the blocks "
                "written so far are recorded: free space and re-run the same command to resume"
            ) from exc
        raise exc

    def close(self, *, abort: bool = False) -> None:
        """Finish writing (or, with ``abort``, drop unwritten batches) and join the thread."""
        if abort and self.error is None:
            self.error = ExtractionError("aborted")
        self._queue.put(_DONE)
        self._thread.join()
        if not abort:
            self.raise_if_failed()

    # -- writer thread -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if self.error is not None:
                    continue  # drain so the main thread never blocks; nothing more is written
                try:
                    self._consume(*item)
                except BaseException as exc:
                    self.error = exc
                    self._bufs.clear()
        finally:
            self._wait_pending(0)  # no write may outlive close()
            self._finisher.shutdown(wait=True)

    def _wait_pending(self, keep: int) -> None:
        """Wait until at most *keep* block writes are pending; record the first failure."""
        while len(self._pending) > keep:
            fut = self._pending[0]
            t0 = time.perf_counter()
            try:
                fut.result()
            except BaseException as exc:
                if self.error is None:
                    self.error = exc
            finally:
                self._pending.popleft()
                self.write_wait += time.perf_counter() - t0

    def _consume(
        self, batch: Batch, host: Mapping[str, Sequence[torch.Tensor]], event: Any
    ) -> None:
        if event is not None:
            event.synchronize()
        for b in batch.blocks:  # a window's batch feeds several blocks
            if b in self._ranges:  # else written by an earlier run: its rows are dropped
                self._consume_block(b, batch, host)

    def _consume_block(
        self, b: int, batch: Batch, host: Mapping[str, Sequence[torch.Tensor]]
    ) -> None:
        """Scatter *batch*'s rows of block *b* into its buffer; hand the block on once whole."""
        start, stop = self._ranges[b]
        bufs = self._bufs.get(b)
        if bufs is None:
            # stored layer-major, handed on as the (prompt, layer, token, d) view: every inner
            # chunk (prompts x 1 layer) is then one contiguous range, compressed where it lies
            shape = (len(self._layers), stop - start, self._t_max)
            bufs = self._bufs[b] = {
                h: np.zeros((*shape, self._widths[h]), self._np_dtype).transpose(1, 0, 2, 3)
                for h in self._hooks
            }
        # numpy copies, single-threaded: torch ops here would share torch's intra-op thread
        # pool with the forward pass running meanwhile on the main thread
        index = np.asarray(batch.indices, dtype=np.intp)
        src = np.flatnonzero((index >= start) & (index < stop))  # the batch rows of block b
        rows = index[src] - start
        whole = len(src) == len(index)  # a batch of one block: no gather
        seq = batch.seq_len
        for h in self._hooks:
            buf = bufs[h]
            for li, t in enumerate(host[h]):
                if t.dtype != self._dtype:
                    t = t.to(self._dtype)
                a = to_numpy(t.detach())
                buf[rows, li, :seq] = a[:, :seq] if whole else a[src, :seq]
        self._left[b] -= len(src)
        if self._left[b] < 0:
            raise ExtractionError(
                f"expected each row of block {b} once, got {-self._left[b]} more; the batch "
                "plan is inconsistent: report this as a bug"
            )
        if self._left[b] == 0:
            bufs = self._bufs.pop(b)
            self._wait_pending(self._max_pending - 1)  # written while the next window assembles
            if self.error is not None:
                raise self.error
            self._pending.append(self._finisher.submit(self._finish_block, b, start, stop, bufs))

    def _finish_block(self, b: int, start: int, stop: int, bufs: dict[str, np.ndarray]) -> None:
        if self.error is not None:
            return  # an earlier block failed: write nothing more

        def prepare(hook: str, region: np.ndarray, index: tuple[slice, ...]) -> None:
            rows, layers = index[0], index[1]
            n = self._n_tokens[start + rows.start : start + rows.stop]
            for r in range(region.shape[0]):  # padding holds the padded batch's values: zero it
                region[r, :, int(n[r]) :] = 0
            bad = _nonfinite(region)
            if bad is not None:
                self._report_nonfinite(hook, bad, start + rows.start, layers.start)

        self._write_block(b, bufs, prepare)
        self.blocks_written.append(b)
        if self._on_block is not None:
            self._on_block(b, sum(a.nbytes for a in bufs.values()))

    def _report_nonfinite(self, hook: str, bad: np.ndarray, start: int, layer0: int = 0) -> None:
        r, li = (int(x) for x in np.argwhere(bad)[0])
        li += layer0
        raise ExtractionError(
            f"expected finite activations, got NaN or inf in prompt {start + r} at layer "
            f"{self._layers[li]} ({hook}); nothing of its block was written. float16 overflows "
            "easily: use --dtype bfloat16 or float32, or check the checkpoint's weights"
        )
