"""Standard JSON out: RFC 8259 has no NaN or Infinity, so an undefined number is ``null``.

Python's ``json`` writes ``NaN`` by default, which ``jq``, JavaScript and most JSON parsers
refuse. Every JSON file or ``--json`` output actstore writes for people and other tools goes
through :func:`dumps`.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps", "finite_or_null"]


def finite_or_null(obj: Any) -> Any:
    """*obj* with every NaN/inf (Python or numpy, also inside arrays) replaced by ``None``.

    numpy scalars become Python numbers and numpy arrays nested lists; containers are rebuilt,
    everything else is returned as it is.
    """
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_null(v) for v in obj]
    if type(obj).__module__ == "numpy":
        if getattr(obj, "ndim", None) == 0:
            obj = obj.item()  # numpy scalar
        elif hasattr(obj, "tolist"):
            return finite_or_null(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite_or_null` (*obj*): standard JSON, anything unknown as str."""
    kwargs.setdefault("default", str)
    return json.dumps(finite_or_null(obj), allow_nan=False, **kwargs)
