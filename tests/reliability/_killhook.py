"""Test-only fault hook: log every store write of a run and SIGKILL the process at a chosen one.

Run as ``python -m tests.reliability._killhook <actstore CLI args>`` (from the repository root).
It patches zarr's ``LocalStore`` write function (``zarr.storage._local._put``, which writes a
``.partial`` file and renames it), actstore's own shard-file write of the same kind
(``actstore.store.core._chunkcodec.write_file``) and the HF backend's forward pass, then runs
``actstore``:

* ``ACTSTORE_FAULT_ROOT``: the cache directory (keys are logged relative to it).
* ``ACTSTORE_FAULT_LOG``: append one line per event: ``put <key> <occurrence> <nbytes> <flag>``
  (flag ``exclusive`` for zarr's create-if-absent puts, else ``-``) or
  ``forward - <occurrence> 0 -``.
* ``ACTSTORE_FAULT_KILL``: ``<kind> <key> <occurrence> <phase>``: when that event happens, SIGKILL
  this process. Phases: ``before`` (nothing written), ``mid`` (half the bytes in zarr's
  ``.partial`` file: killed inside the write), ``after`` (the put landed; the caller never
  continues), ``torn`` (half the bytes at the final key: a filesystem without atomic rename).

Kill points are named by store key and occurrence, not by time, so each one is reached the same
way on every run, whatever the load of the machine.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_counts: Counter[tuple[str, str]] = Counter()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _event(kind: str, key: str, nbytes: int, flag: str = "-") -> tuple[int, str | None]:
    """Count and log one event; return its occurrence and the phase to kill at (or None)."""
    with _lock:
        _counts[(kind, key)] += 1
        occ = _counts[(kind, key)]
        log = os.environ.get("ACTSTORE_FAULT_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(f"{kind} {key} {occ} {nbytes} {flag}\n")
    spec = os.environ.get("ACTSTORE_FAULT_KILL", "").split()
    if len(spec) == 4 and spec[0] == kind and spec[1] == key and int(spec[2]) == occ:
        return occ, spec[3]
    return occ, None


def install() -> None:
    """Patch the store's write function and the forward pass (idempotent per process)."""
    import zarr.storage._local as local

    if getattr(local._put, "_fault_hook", False):
        return
    root = Path(os.environ["ACTSTORE_FAULT_ROOT"]).absolute()
    real_put = local._put

    def faulty(path: Path, data: bytes, exclusive: bool, write: Any) -> int:
        key = Path(path).absolute().relative_to(root).as_posix()
        _, phase = _event("put", key, len(data), "exclusive" if exclusive else "-")
        if phase == "before":
            _die()
        if phase in ("mid", "torn"):
            path.parent.mkdir(parents=True, exist_ok=True)
            target = path if phase == "torn" else path.with_suffix(f".{uuid.uuid4().hex}.partial")
            with open(target, "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
                os.fsync(fh.fileno())
            _die()
        try:
            return write()
        finally:
            if phase == "after":  # also when an exclusive put found the key taken
                _die()

    def put(path: Path, value: Any, exclusive: bool = False) -> int:
        data = bytes(value.as_buffer_like())
        return faulty(path, data, exclusive, lambda: real_put(path, value, exclusive))

    # actstore writes shard files itself on a local directory (the same .partial + rename)
    from actstore.store.core import _chunkcodec

    real_write_file = _chunkcodec.write_file

    def write_file(store_root: Path, key: str, pieces: Any) -> int:
        data = b"".join(memoryview(p).cast("B") for p in pieces)
        write = lambda: real_write_file(store_root, key, pieces)  # noqa: E731
        return faulty(Path(store_root) / key, data, False, write)

    _chunkcodec.write_file = write_file  # type: ignore[assignment]
    put._fault_hook = True  # type: ignore[attr-defined]
    local._put = put

    from actstore.extractors import _hf

    real_capture = _hf.HFBackend.capture

    def capture(self: Any, *args: Any, **kwargs: Any) -> Any:
        _, phase = _event("forward", "-", 0)
        if phase == "before":
            _die()
        return real_capture(self, *args, **kwargs)

    _hf.HFBackend.capture = capture  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    install()
    from actstore.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
