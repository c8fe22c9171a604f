"""Turn a full disk (ENOSPC / EDQUOT) anywhere in a cache write into :class:`DiskFullError`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from actstore._locations import is_disk_full
from actstore.errors import ActstoreError, DiskFullError

__all__ = ["disk_full_as_error", "is_disk_full"]


@contextlib.contextmanager
def disk_full_as_error(url: str, doing: str) -> Iterator[None]:
    """Raise :class:`DiskFullError` naming *doing* and the fix when the disk fills up inside."""
    try:
        yield
    except ActstoreError:
        raise
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise DiskFullError(
            f"expected free space in {url!r} for {doing}, got a full disk or quota ({exc}); "
            "free space and re-run the same command: finished blocks are kept and it resumes"
        ) from exc
