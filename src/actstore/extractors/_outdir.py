"""Fail early, before loading weights, when a local ``--out`` cannot be written."""

from __future__ import annotations

import os
from pathlib import Path

from actstore.errors import ReadOnlyError

__all__ = ["check_writable"]


def check_writable(out: str) -> None:
    """Fail early, before loading weights, when a local output path cannot be written."""
    if "://" in out and not out.startswith("file://"):
        return
    if out.lower().endswith(".zip"):
        raise ReadOnlyError(
            f"expected a writable cache location for --out, got the zip file {out!r}; zip caches "
            "are read-only: extract into a directory and `actstore copy` it to a .zip"
        )
    path = Path(out.removeprefix("file://")).expanduser().absolute()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        where = "which" if probe == path else f"whose parent {str(probe)!r}"
        raise ReadOnlyError(
            f"expected a writable directory for --out, got {str(path)!r} {where} is a file; "
            "choose another output path"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ReadOnlyError(
            f"expected a writable location for --out, got {str(path)!r} where {str(probe)!r} is "
            "not writable; choose another output path or fix its permissions"
        )
    # os.access says yes to root everywhere (/proc, /sys, a read-only mount): try for real.
    import tempfile

    from actstore._locations import location_error

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".actstore-check-", dir=probe))
    except OSError as exc:
        raise location_error(exc, out, "write") from exc
