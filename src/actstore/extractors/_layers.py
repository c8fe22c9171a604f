"""Resolving a layer request (``"all"``, ``"7,15,-1"``, a sequence) against a model's depth."""

from __future__ import annotations

from collections.abc import Sequence

from actstore.errors import InvalidArgumentError

__all__ = ["resolve_layers"]


def resolve_layers(layers: str | int | Sequence[int], n_layers: int) -> tuple[int, ...]:
    """Turn a layer request into sorted, unique, non-negative block indices.

    Parameters
    ----------
    layers
        ``"all"``, a comma-separated string such as ``"7,15,-1"``, an int, or a sequence of ints.
        Negative indices count from the end (``-1`` is the last decoder block).
    n_layers
        The model's number of decoder blocks (its depth).

    Returns
    -------
    tuple of int
        Sorted unique indices in ``[0, n_layers)``.
    """
    if isinstance(layers, str):
        text = layers.strip().lower()
        if text == "all":
            return tuple(range(n_layers))
        items: list[int] = []
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                items.append(int(part))
            except ValueError:
                raise InvalidArgumentError(
                    f"expected layers as 'all' or comma-separated integers, got {layers!r}; "
                    "use e.g. --layers 7,15,-1"
                ) from None
    elif isinstance(layers, int):
        items = [layers]
    else:
        items = [int(x) for x in layers]
    if not items:
        raise InvalidArgumentError(
            f"expected at least one layer, got {layers!r}; use e.g. --layers all or --layers 0,-1"
        )
    out = set()
    for raw in items:
        idx = raw + n_layers if raw < 0 else raw
        if not 0 <= idx < n_layers:
            raise InvalidArgumentError(
                f"expected layers in [-{n_layers}, {n_layers - 1}] (the model has {n_layers} "
                f"decoder layers), got {raw}; pick layers inside the model's depth"
            )
        out.add(idx)
    return tuple(sorted(out))
