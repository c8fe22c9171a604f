"""The package version, read from the installed metadata when available."""

from __future__ import annotations

from importlib import metadata


def _read_version() -> str:
    try:
        return metadata.version("actstore")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+unknown"


__version__: str = _read_version()
"""The installed package version (PEP 440); ``0.0.0+unknown`` in a source tree never installed."""
