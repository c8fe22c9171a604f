"""The package version, read from the installed metadata when available."""

from __future__ import annotations

import os
import sys


def _from_dist_info() -> str | None:
    """``Version:`` of the first ``actstore-*.dist-info/METADATA`` on ``sys.path`` (the one
    ``importlib.metadata`` finds first), without importing ``importlib.metadata`` (~25 ms, most
    of a small probe fit's imports)."""
    for entry in sys.path:
        try:
            names = sorted(n for n in os.listdir(entry or ".") if n.endswith(".dist-info"))
        except OSError:
            continue
        for name in names:
            if name.split("-", 1)[0].lower().replace("_", "-") != "actstore":
                continue
            try:
                with open(os.path.join(entry or ".", name, "METADATA"), encoding="utf-8") as fh:
                    for line in fh:
                        if line.startswith("Version:"):
                            return line.split(":", 1)[1].strip()
                        if not line.strip():
                            break
            except OSError:
                continue
    return None


def _read_version() -> str:
    found = _from_dist_info()
    if found:
        return found
    from importlib import metadata

    try:
        return metadata.version("actstore")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+unknown"


__version__: str = _read_version()
"""The installed package version (PEP 440); ``0.0.0+unknown`` in a source tree never installed."""
