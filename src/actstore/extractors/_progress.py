"""Progress: a tqdm bar on a terminal, plain log lines otherwise (SLURM logs, pipes)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from actstore.extractors._plan import human_bytes

__all__ = ["Progress"]


class Progress:
    """Tokens/s, blocks done, bytes written, the writer's MB/s and queue depth, and ETA.

    The writer part reads e.g. ``writer 412 MB/s, queue 3/3 (writer-bound)``: MB/s of raw
    activations stored since the start (two significant digits below 10 MB/s, so a slow writer
    never shows 0), and how many batches and blocks wait for the
    writer out of the most that may (when it stays full the disk or the encoding is the
    bottleneck; near empty, the model is).

    Parameters
    ----------
    total_tokens, total_blocks
        What this run will compute and write.
    mode
        ``None`` (tqdm on a TTY, log lines otherwise), ``"bar"``, ``"log"`` or ``False`` (silent).
    interval
        Seconds between log lines.
    """

    def __init__(
        self,
        total_tokens: int,
        total_blocks: int,
        *,
        mode: Any = None,
        interval: float = 10.0,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        if mode is None or mode is True:
            mode = "bar" if self.stream.isatty() else "log"
        self.mode = mode
        self.total_tokens = total_tokens
        self.total_blocks = total_blocks
        self.tokens = 0
        self.blocks = 0
        self.bytes = 0
        #: ``() -> (waiting, bound)`` of the writer's queue, set by the caller
        self.queue_depth: Any = None
        self.interval = interval
        self._t0 = time.perf_counter()
        self._last = self._t0
        self._lock = threading.Lock()
        self._bar: Any = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total_tokens, unit="tok", unit_scale=True, file=self.stream, desc="extract"
            )

    def _postfix(self) -> str:
        text = f"blocks {self.blocks}/{self.total_blocks}, {human_bytes(self.bytes)} written"
        if self.bytes:
            dt = max(time.perf_counter() - self._t0, 1e-9)
            text += f", writer {_mb_per_s(self.bytes / dt)} MB/s"
        if self.queue_depth is not None:
            waiting, bound = self.queue_depth()
            text += f", queue {waiting}/{bound}"
            if waiting >= bound:
                text += " (writer-bound)"
            elif waiting == 0:
                text += " (model-bound)"
        return text

    def add_tokens(self, n: int) -> None:
        with self._lock:
            self.tokens += n
            if self._bar is not None:
                self._bar.update(n)
                self._bar.set_postfix_str(self._postfix(), refresh=False)
            elif self.mode == "log":
                now = time.perf_counter()
                if now - self._last >= self.interval:
                    self._last = now
                    self._log(now)

    def add_block(self, nbytes: int) -> None:
        with self._lock:
            self.blocks += 1
            self.bytes += nbytes
            if self._bar is not None:
                self._bar.set_postfix_str(self._postfix())

    def _log(self, now: float) -> None:
        dt = max(now - self._t0, 1e-9)
        rate = self.tokens / dt
        left = (self.total_tokens - self.tokens) / rate if rate > 0 else float("nan")
        print(
            f"actstore extract: {self.tokens}/{self.total_tokens} tokens "
            f"({rate:,.0f} tok/s), {self._postfix()}, ETA {left:,.0f} s",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "log":
            self._log(time.perf_counter())


def _mb_per_s(rate: float) -> str:
    """``rate`` bytes/s as MB/s: whole numbers from 10 MB/s, two significant digits below."""
    mb = rate / 1e6
    if mb >= 10:
        return f"{mb:,.0f}"
    return f"{mb:.2g}" if mb >= 0.01 else "<0.01"
