"""The package version, read from the installed metadata when available."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("actstore")
except metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
