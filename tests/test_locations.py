"""``location_error``: a full disk is :class:`DiskFullError` whichever way it is reported."""

from __future__ import annotations

import errno

import pytest

from actstore._locations import location_error
from actstore.errors import DiskFullError, StorageError


def _chained(code: int) -> RuntimeError:
    """A library error raised while handling an OSError *code* (as fsspec and zarr do)."""
    try:
        try:
            raise OSError(code, "the disk said no")
        except OSError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
@pytest.mark.parametrize("url", ["/tmp/cache.zarr", "s3://bucket/cache.zarr"])
def test_full_disk_or_quota_is_disk_full(code: int, url: str) -> None:
    # a quota (EDQUOT, clusters' home and scratch) used to read as "remove what is in the way"
    for exc in (OSError(code, "the disk said no"), _chained(code)):
        err = location_error(exc, url, "write")
        assert isinstance(err, DiskFullError), (exc, err)
        assert "free space" in str(err)


def test_other_errors_are_not_disk_full() -> None:
    err = location_error(OSError(errno.EACCES, "Permission denied"), "/tmp/c.zarr", "read")
    assert isinstance(err, StorageError) and not isinstance(err, DiskFullError)
