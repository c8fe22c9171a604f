"""Optional dependencies (pip extras): a missing one is a one-line error naming the extra.

``pip install actstore`` installs what reading and analysing a cache needs; running a model needs
the ``extract`` extra (torch, transformers, ...), TransformerLens the ``tlens`` extra and S3 URLs
the ``s3`` extra. :func:`missing_extra` turns the ``ModuleNotFoundError`` of a lazy import into a
:class:`~actstore.errors.MissingExtraError` that says which extra to install.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from actstore.errors import MissingExtraError

__all__ = ["EXTRAS", "missing_extra", "needs_extras", "protocol_extra"]

#: top-level module -> the extra that installs it
EXTRAS: dict[str, str] = {
    "torch": "extract",
    "transformers": "extract",
    "accelerate": "extract",
    "tokenizers": "extract",
    "safetensors": "extract",
    "huggingface_hub": "extract",
    "transformer_lens": "tlens",
    "s3fs": "s3",
    "aiobotocore": "s3",
    "botocore": "s3",
}

#: fsspec protocol -> (extra or None, the package fsspec asks for)
_PROTOCOLS: dict[str, tuple[str | None, str]] = {
    "s3": ("s3", "s3fs"),
    "s3a": ("s3", "s3fs"),
    "gs": (None, "gcsfs"),
    "gcs": (None, "gcsfs"),
    "az": (None, "adlfs"),
    "abfs": (None, "adlfs"),
    "http": (None, "aiohttp"),
    "https": (None, "aiohttp"),
}

F = TypeVar("F", bound=Callable[..., Any])


def missing_extra(exc: ImportError, what: str) -> MissingExtraError | None:
    """The one-line error for *exc* if it is a missing optional dependency, else ``None``.

    Parameters
    ----------
    exc : ImportError
        The error of a failed import.
    what : str
        What needed it, e.g. ``"actstore extract"`` (named in the message).
    """
    name = (getattr(exc, "name", None) or "").split(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return None
    return MissingExtraError(
        f"expected the `{extra}` extra for {what}, got no module named {name!r}; install it "
        f"with pip install 'actstore[{extra}]'"
    )


def protocol_extra(protocol: str, url: str, exc: ImportError) -> MissingExtraError:
    """The one-line error for an fsspec protocol whose implementation is not installed."""
    extra, package = _PROTOCOLS.get(protocol, (None, f"the fsspec implementation of {protocol}"))
    fix = f"pip install 'actstore[{extra}]'" if extra else f"pip install {package}"
    what = f"the `{extra}` extra" if extra else f"the package {package}"
    return MissingExtraError(f"expected {what} to open {url!r}, got {exc}; install it with {fix}")


@contextlib.contextmanager
def needs_extras(what: str) -> Iterator[None]:
    """Turn a missing optional dependency inside the block into :class:`MissingExtraError`."""
    try:
        yield
    except ImportError as exc:
        err = missing_extra(exc, what)
        if err is None:
            raise
        raise err from exc


def requires_extras(what: str) -> Callable[[F], F]:
    """Decorator form of :func:`needs_extras`."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with needs_extras(what):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap
