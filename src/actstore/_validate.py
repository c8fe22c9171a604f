"""Small argument checks shared by several packages (no dependencies beyond numpy)."""

from __future__ import annotations

from typing import Any, TypeGuard

import numpy as np

__all__ = ["is_int"]


def is_int(value: Any) -> TypeGuard[int | np.integer[Any]]:
    """True for a Python or numpy integer; False for a bool (``True`` is an ``int`` to Python)."""
    return not isinstance(value, bool) and isinstance(value, int | np.integer)
