"""Failures of a location (a local path or a storage URL) as one-line errors naming it.

A path whose parent cannot be created, a file in the way, a read-only or special filesystem, no
permission; for URLs a bucket that does not exist, refused credentials or an endpoint that does not
answer. :func:`location_errors` wraps the code that touches a location and turns such failures into
:class:`~actstore.errors.StorageError` (or :class:`~actstore.errors.ReadOnlyError` for a local
location that cannot be written, :class:`~actstore.errors.DiskFullError` for a full disk); errors
actstore raised on purpose pass through unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from actstore.errors import (
    ActstoreError,
    DiskFullError,
    InvalidArgumentError,
    ReadOnlyError,
    StorageError,
)

__all__ = [
    "check_output_dir",
    "is_disk_full",
    "is_location_failure",
    "located",
    "location_error",
    "location_errors",
    "require_local",
]

F = TypeVar("F", bound=Callable[..., Any])


def is_disk_full(exc: BaseException) -> bool:
    """True when *exc* (or an exception it was raised from) is ENOSPC or EDQUOT (a quota)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


#: modules whose exceptions are storage-side failures (network, object store, credentials)
_STORAGE_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "adlfs", "fsspec")

_LOCAL_REASONS = {
    errno.ENOENT: "a folder on the way does not exist and cannot be created there",
    errno.ENOTDIR: "a file is in the way (part of the path is a file, not a folder)",
    errno.EEXIST: "a file is in the way",
    errno.EISDIR: "a folder is in the way",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted (a protected or special filesystem)",
    errno.EROFS: "the filesystem is read-only",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ELOOP: "too many symbolic links",
}


def _module(exc: BaseException) -> str:
    return type(exc).__module__.split(".")[0]


def is_location_failure(exc: BaseException) -> bool:
    """True for an OS error or a storage-side error (object store, network), not ours."""
    if isinstance(exc, ActstoreError):
        return False
    if isinstance(exc, OSError | TimeoutError):  # asyncio.TimeoutError is TimeoutError (3.11+)
        return True
    return any(_module(e) in _STORAGE_MODULES for e in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        out.append(cur)
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return out


def _remote_reason(exc: BaseException) -> tuple[str, str]:
    """(reason, fix) for a failure of a storage URL."""
    names = " ".join(f"{type(e).__name__} {e}" for e in _chain(exc))
    low = names.lower()
    if "nosuchbucket" in low or "bucket does not exist" in low:
        return "the bucket does not exist", "create the bucket or fix the URL"
    if "nocredentials" in low or "unable to locate credentials" in low:
        return "no credentials were found", (
            'pass them with --storage-options \'{"key": ..., "secret": ...}\' '
            "(storage_options=) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if any(
        k in low
        for k in (
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "accessdenied",
            "access denied",
            "forbidden",
            "expiredtoken",
            "permissionerror",
        )
    ):
        return "the storage refused the credentials (access denied)", (
            "check the key and secret in --storage-options (storage_options=) and the bucket's "
            "permissions"
        )
    if any(
        k in low
        for k in (
            "endpointconnectionerror",
            "could not connect",
            "connecttimeout",
            "readtimeout",
            "timeout",
            "connection refused",
            "cannot connect",
            "connectionerror",
            "clientconnectorerror",
            "name or service not known",
        )
    ):
        return "the endpoint does not answer", (
            "check endpoint_url in --storage-options and the network, then retry"
        )
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}".rstrip(": "), "check the URL and --storage-options"


def location_error(exc: BaseException, url: str, action: str) -> ActstoreError:
    """The project error for *exc*, raised while *action* (e.g. ``"write"``) at *url*."""
    local = "://" not in url and "::" not in url
    if is_disk_full(exc):
        return DiskFullError(
            f"expected free space to {action} {url!r}, got no space left on the device; free "
            "space or pick another location, then re-run to resume"
        )
    if local and isinstance(exc, OSError) and exc.errno is not None:
        reason = _LOCAL_REASONS.get(exc.errno, exc.strerror or str(exc))
        name = os.fspath(exc.filename) if exc.filename else url
        got = f"{name!r}: {reason}" if name == url else f"{name!r} ({reason}) for {url!r}"
        if action == "read":
            return StorageError(
                f"expected a location to read, got {got}; check the path and its permissions"
            )
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return ReadOnlyError(
                f"expected a location to {action}, got {got}; pick a path you can write to "
                "(check its permissions)"
            )
        return StorageError(
            f"expected a location to {action}, got {got}; pick another path or remove what is "
            "in the way"
        )
    if local:
        return StorageError(
            f"expected a location to {action}, got {url!r}: {type(exc).__name__}: {exc}; "
            "pick another path"
        )
    reason, fix = _remote_reason(exc)
    return StorageError(f"expected a storage location to {action}, got {url!r}: {reason}; {fix}")


@contextlib.contextmanager
def location_errors(url: str | os.PathLike[str], action: str) -> Iterator[None]:
    """Turn location failures inside the block into the project's one-line errors.

    Parameters
    ----------
    url : str or os.PathLike
        The location named in the message.
    action : str
        What was being done, e.g. ``"read"``, ``"write"`` (``"expected a location to write"``).

    Yields
    ------
    None
        Run the code that touches ``url`` inside the ``with`` block.

    Raises
    ------
    StorageError, ReadOnlyError, DiskFullError
        For OS errors and storage-side failures (the original exception is the ``__cause__``);
        an :class:`~actstore.errors.ActstoreError` and any other exception pass through.

    Examples
    --------
    >>> from actstore.locations import location_errors
    >>> with location_errors("/proc/out", "write"):  # doctest: +SKIP
    ...     open("/proc/out/x.txt", "w")
    Traceback (most recent call last):
    actstore.errors.StorageError: expected a location to write, got '/proc/out': ...
    """
    try:
        yield
    except ActstoreError:
        raise
    except Exception as exc:
        if not is_location_failure(exc):
            raise
        raise location_error(exc, os.fspath(url), action) from exc


def require_local(where: str | os.PathLike[str], what: str = "the output") -> str:
    """*where* as a local path (``file://`` stripped); refuse a URL (``s3://...``, ``zip::...``).

    Outputs written with plain file I/O (figures, reports, exports, prompt files, ``.npz``
    probes, run folders) must not take a URL as a local path, which would silently create a
    local folder named ``s3:``.

    Parameters
    ----------
    where : str or os.PathLike
        A local path or a ``file://`` URL.
    what : str
        What the location is for, named in the message (e.g. ``"--out"``).

    Returns
    -------
    str
        The local path.

    Raises
    ------
    InvalidArgumentError
        *where* is a URL other than ``file://``.
    """
    loc = os.fspath(where)
    loc = loc[len("file://") :] if loc.startswith("file://") else loc
    if "://" in loc or "::" in loc:
        raise InvalidArgumentError(
            f"expected a local path for {what}, got the URL {os.fspath(where)!r}, which would "
            "be written as a local folder; pick a local path (copy the files up afterwards)"
        )
    return loc


def located(action: str, param: str, *, local: bool = False) -> Callable[[F], F]:
    """Decorator: :func:`location_errors` around a function, naming its argument *param*.

    The argument may be a path, a URL or an object with a ``url`` attribute (a cache). With
    ``local=True`` the argument must be a local path (:func:`require_local`).
    """

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            where = sig.bind_partial(*args, **kwargs).arguments.get(param)
            where = getattr(where, "url", where)
            if not isinstance(where, str | os.PathLike):
                return fn(*args, **kwargs)
            loc = os.fspath(where)
            if local:
                loc = require_local(loc, f"the output ({param}=)")
                bound = sig.bind_partial(*args, **kwargs)
                if isinstance(bound.arguments[param], str | os.PathLike):
                    bound.arguments[param] = loc  # a file:// URL as the local path it names
                args, kwargs = bound.args, bound.kwargs
            loc = loc[len("file://") :] if loc.startswith("file://") else loc
            with location_errors(loc, action):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def check_output_dir(path: str | os.PathLike[str], *, parent: bool = False) -> None:
    """Create the local output folder *path* (or the parent of the file *path*) now, so a
    location that cannot be written is refused before the work, not after it.

    Parameters
    ----------
    path : str or os.PathLike
        The output folder, or with ``parent=True`` an output file. A URL is not checked here
        (it is checked where it is written).
    parent : bool
        Create the folder that holds the file *path* rather than *path* itself.

    Raises
    ------
    StorageError, ReadOnlyError
        The folder cannot be created (a file in the way, a special or read-only filesystem, no
        permission).
    """
    text = os.fspath(path)
    if "://" in text or "::" in text:  # a URL: checked where it is written
        return
    folder = os.path.dirname(text) if parent else text
    if not folder:
        return
    with location_errors(text, "write"):
        os.makedirs(folder, exist_ok=True)
