"""Layer indices as the store takes them: real (resolved, non-negative) integers, numpy's too.

The extraction's layer grammar (``"all"``, ``"spaced:K"``, ``"7,15,-1"``) is resolved against a
model's depth before it reaches the store (``actstore.extractors.resolve_layers``); here a string
is refused rather than read character by character.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from actstore.errors import InvalidArgumentError

__all__ = ["is_index", "layer_indices", "layer_list"]


def is_index(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def layer_indices(layers: Any) -> tuple[int, ...]:
    """``layers`` as a tuple of real (resolved, non-negative) layer indices, or a one-line error:
    ``int()`` would read ``"01"`` as two layers and ``1.5`` as layer 1."""
    items = list(layers) if isinstance(layers, Sequence | np.ndarray) else None
    if isinstance(layers, str) or items is None or not all(is_index(x) for x in items):
        raise InvalidArgumentError(
            f"expected layers as a sequence of integer layer indices, got {layers!r}; pass e.g. "
            "(7, 15, 23) (resolve 'all', 'spaced:K' or negative indices first: "
            "actstore.extractors.resolve_layers)"
        )
    if any(x < 0 for x in items):
        raise InvalidArgumentError(
            f"expected layer indices >= 0 (the layer coordinate is the real block index), got "
            f"{tuple(int(x) for x in items)!r}; resolve negative indices against the model's depth"
        )
    return tuple(int(x) for x in items)


def layer_list(layers: Any) -> list[int] | None:
    """A request for stored layers (an int, a sequence or a 1-D array of integers, numpy's
    included) as a list of ints; ``None`` stays ``None``.

    Raises
    ------
    InvalidArgumentError
        A string, a float, a bool or anything else (``int()`` would read ``"1,3"`` as ``1``,
        ``","`` and ``3``).
    """
    if layers is None:
        return None
    items = [layers] if is_index(layers) else layers
    if (
        isinstance(items, str | bytes)
        or not isinstance(items, Sequence | np.ndarray)
        or not all(is_index(x) for x in items)
    ):
        raise InvalidArgumentError(
            f"expected layers as a list of stored layer indices, got {layers!r}; pass e.g. "
            "[7, 15] (the layer coordinate's values)"
        )
    return [int(x) for x in items]
