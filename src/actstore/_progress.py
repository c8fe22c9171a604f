"""Progress of long operations: a tqdm bar on a terminal, a log line every few seconds otherwise.

Library functions (``verify_cache``, ``repair_cache``, ``copy_cache``, ``fit_probes``, ``detect``)
are silent unless progress is switched on for the calls inside :func:`show_progress`; the command
line switches it on for every command, and off with ``--quiet`` or ``--json``::

    with actstore.show_progress():          # a bar on a terminal, log lines otherwise
        actstore.store.verify_cache("s3://bucket/cache.zarr")

Log lines go to stderr, one every ``ACTSTORE_PROGRESS_INTERVAL`` seconds (default 10) and one at
the end, so a SLURM log or a pipe shows where a long run is without a bar's carriage returns; a
run shorter than the interval prints none (an error then stays the only line on stderr).
This module imports neither torch nor dask at import time.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TextIO

__all__ = ["Progress", "dask_progress", "progress_mode", "show_progress"]

#: None: a bar on a terminal, log lines otherwise; "bar"/"log": that; False: silent.
_MODE: ContextVar[Any] = ContextVar("actstore_progress", default=False)
_UNSET = object()


@contextlib.contextmanager
def show_progress(mode: bool | str | None = True) -> Iterator[None]:
    """Show progress of the actstore operations run inside (see the module docstring).

    Parameters
    ----------
    mode : bool, {"bar", "log"} or None
        ``True`` or ``None``: a bar on a terminal, log lines otherwise; ``"bar"`` or ``"log"``:
        that; ``False``: silent.

    Yields
    ------
    None
        Run the operations inside the ``with`` block.

    Raises
    ------
    InvalidArgumentError
        If ``mode`` is none of those.

    Examples
    --------
    >>> from actstore import show_progress
    >>> from actstore.analysis import fit_probes
    >>> with show_progress("log"):  # doctest: +SKIP
    ...     fit_probes("cache.zarr", prompt_set="arithmetic", target="value")
    """
    if mode not in (True, False, None, "bar", "log"):
        from actstore.errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"expected progress mode True, False, None, 'bar' or 'log', got {mode!r}"
        )
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


def progress_mode() -> Any:
    """The mode set by the innermost :func:`show_progress` (``False`` outside any)."""
    return _MODE.get()


def _interval() -> float:
    text = os.environ.get("ACTSTORE_PROGRESS_INTERVAL", "10")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        from actstore.errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"expected ACTSTORE_PROGRESS_INTERVAL as seconds >= 0, got {text!r}; unset it or set "
            "e.g. 10"
        )
    return value


class Progress:
    """One operation's progress: ``update(n)`` as work is done, ``close()`` at the end.

    Parameters
    ----------
    what
        The operation, as the log lines name it (``"verify"``, ``"copy arith"``).
    total
        Units of work expected (``None`` when unknown).
    unit
        What one unit is (``"chunks"``, ``"blocks"``, ``"rows"``).
    mode
        Overrides the :func:`show_progress` mode.
    """

    def __init__(
        self,
        what: str,
        total: int | None,
        unit: str,
        *,
        mode: Any = _UNSET,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        mode = _MODE.get() if mode is _UNSET else mode
        if mode is None or mode is True:
            mode = "bar" if _isatty(self.stream) else "log"
        self.mode = mode
        self.what, self.total, self.unit = what, total, unit
        self.done = 0
        self.interval = _interval() if mode == "log" else 0.0
        self._t0 = time.perf_counter()
        self._last = self._t0
        self._lock = threading.Lock()
        self._bar: Any = None
        self._closed = False
        self._logged = False
        if mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, unit=f" {unit}", file=self.stream, desc=f"actstore {what}"
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count *n* more units done."""
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)
            elif self.mode == "log":
                now = time.perf_counter()
                if now - self._last >= self.interval:
                    self._last = now
                    self._logged = True
                    self._log(now)

    def add_total(self, n: int) -> None:
        """Expect *n* more units (work discovered on the way)."""
        with self._lock:
            self.total = (self.total or 0) + n
            if self._bar is not None:
                self._bar.total = self.total
                self._bar.refresh()

    def _log(self, now: float, final: bool = False) -> None:
        dt = max(now - self._t0, 1e-9)
        rate = self.done / dt
        of = f"/{self.total}" if self.total is not None else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        if final:
            tail = f"done in {dt:,.1f} s"
        elif self.total is not None and rate > 0:
            tail = f"{rate:,.1f} {self.unit}/s, ETA {(self.total - self.done) / rate:,.0f} s"
        else:
            tail = f"{rate:,.1f} {self.unit}/s"
        print(
            f"actstore {self.what}: {self.done}{of} {self.unit}{pct}, {tail}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        """End the bar, or write the last log line."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._bar is not None:
                self._bar.close()
            elif self.mode == "log" and self._logged:  # a run too short for a line gets none
                self._log(time.perf_counter(), final=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def dask_progress(what: str) -> Iterator[None]:
    """Progress of the dask computations run inside, counted in finished tasks (the local
    schedulers; a ``dask.distributed`` cluster has its own dashboard)."""
    if progress_mode() is False:
        yield
        return
    from dask.callbacks import Callback

    bar = Progress(what, None, "tasks")

    class _Tasks(Callback):  # type: ignore[misc]
        def _start_state(self, dsk: Any, state: Any) -> None:
            bar.add_total(sum(len(state[k]) for k in ("ready", "waiting", "running")))

        def _posttask(self, *args: Any) -> None:
            bar.update(1)

    with bar, _Tasks():
        yield
