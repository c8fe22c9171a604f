"""Small argument checks shared by several packages (no dependencies beyond numpy)."""

from __future__ import annotations

from typing import Any, TypeGuard

import numpy as np

__all__ = ["is_int", "split_items"]


def is_int(value: Any) -> TypeGuard[int | np.integer[Any]]:
    """True for a Python or numpy integer; False for a bool (``True`` is an ``int`` to Python)."""
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def split_items(text: str, what: str, example: str) -> list[str]:
    """Split a comma-separated option value into stripped items, refusing empty ones.

    ``"1,,2"``, ``"1,2,"`` and ``",1"`` are refused rather than read as ``1,2``: a doubled or
    stray comma is usually a lost item (``"1,,2"`` meant to be ``"1,12,2"``?), and reading past
    it would run a different job than the one typed.

    Parameters
    ----------
    text
        The option's value, e.g. ``"7,15,23"``.
    what
        The option, for the message (``"--layers"``).
    example
        A valid value, for the message (``"7,15,23"``).

    Returns
    -------
    list of str
        The items, stripped of surrounding spaces (``[]`` for an empty or blank *text*).

    Raises
    ------
    InvalidArgumentError
        When an item is empty.
    """
    if not text.strip():
        return []
    items = [part.strip() for part in text.split(",")]
    if "" in items:
        from actstore.errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"expected {what} as comma-separated items with none empty, got {text!r}; remove "
            f"the extra comma (e.g. {example})"
        )
    return items
