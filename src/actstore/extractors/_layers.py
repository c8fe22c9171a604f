"""The one layer grammar: ``--layers``, TOML ``layers``, ``extract(layers=...)`` and ``repair``.

Grammar (docs/reference/extract.md, "Choosing layers"):

- ``"all"``: every decoder block;
- ``"spaced:K"``: K blocks evenly spaced up to the last one,
  ``round(linspace(0, n - 1, K + 1)[1:])``;
- ``"7,15,-1"``: comma-separated block indices, negative ones count from the end (``-1`` is the
  last block); an ``int`` or a sequence of ints says the same from Python or TOML.

An explicit list that does not fit the model's depth is an error, unless a rule (``"all"`` or
``"spaced:K"``) is given as ``other_depths``: then that rule picks the layers instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from actstore._validate import split_items
from actstore.errors import InvalidArgumentError

__all__ = ["LayerSpec", "parse_layer_rule", "parse_layers", "resolve_layers"]

#: a parsed layer request: ``"all"``, ``"spaced:K"`` or block indices as given (negatives kept)
LayerSpec = str | tuple[int, ...]

_SPACED = re.compile(r"spaced:(\d+)")
_FIX = "use e.g. --layers all, --layers spaced:7 or --layers 7,15,-1"


def parse_layer_rule(rule: str) -> str:
    """Check a depth-independent rule: ``"all"`` or ``"spaced:K"`` with ``K >= 1``.

    Raises
    ------
    InvalidArgumentError
        For anything else.
    """
    text = rule.strip().lower() if isinstance(rule, str) else rule
    if text == "all":
        return "all"
    m = _SPACED.fullmatch(text) if isinstance(text, str) else None
    if m is None or int(m.group(1)) < 1:
        raise InvalidArgumentError(
            f"expected a layer rule 'all' or 'spaced:K' (K >= 1), got {rule!r}; e.g. spaced:7"
        )
    return f"spaced:{int(m.group(1))}"


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def parse_layers(layers: str | int | Sequence[int]) -> LayerSpec:
    """Parse a layer request without knowing the model's depth.

    Parameters
    ----------
    layers
        ``"all"``, ``"spaced:K"``, a comma-separated string such as ``"7,15,-1"``, an int or a
        sequence (or 1-D array) of ints, numpy's included (negative indices count from the end).

    Returns
    -------
    str or tuple of int
        ``"all"`` / ``"spaced:K"``, or the indices as given (order and negatives kept).

    Raises
    ------
    InvalidArgumentError
        For anything outside the grammar, or no layer at all.
    """
    if isinstance(layers, str):
        text = layers.strip().lower()
        if text == "all" or text.startswith("spaced"):
            return parse_layer_rule(text)
        items: list[int] = []
        for part in split_items(text, "layers", "7,15,23"):
            try:
                items.append(int(part))
            except ValueError as exc:
                raise InvalidArgumentError(
                    "expected layers as 'all', 'spaced:K' or comma-separated integers, got "
                    f"{layers!r}; {_FIX}"
                ) from exc
    elif _is_int(layers):
        items = [int(layers)]
    elif isinstance(layers, Sequence | np.ndarray) and all(_is_int(x) for x in layers):
        items = [int(x) for x in layers]  # numpy integers too (np.arange(0, 32, 8))
    else:
        raise InvalidArgumentError(
            "expected layers as 'all', 'spaced:K', comma-separated integers or a list of "
            f"integers, got {layers!r}; {_FIX}"
        )
    if not items:
        raise InvalidArgumentError(
            f"expected at least one layer, got {layers!r}; use e.g. --layers all or --layers 0,-1"
        )
    return tuple(items)


def _rule(rule: str, n_layers: int) -> tuple[int, ...]:
    k = n_layers if rule == "all" else int(rule.split(":")[1])
    if k >= n_layers:
        return tuple(range(n_layers))
    # round(linspace(0, n - 1, k + 1)[1:]) without numpy: round half to even, as np.rint does
    step = (n_layers - 1) / k
    return tuple(sorted({round(step * i) for i in range(1, k + 1)}))


def resolve_layers(
    layers: str | int | Sequence[int],
    n_layers: int,
    *,
    other_depths: str | None = None,
) -> tuple[int, ...]:
    """Turn a layer request into sorted, unique, non-negative block indices.

    Parameters
    ----------
    layers
        Anything :func:`parse_layers` accepts.
    n_layers
        The model's number of decoder blocks (its depth).
    other_depths
        ``"all"`` or ``"spaced:K"``: used instead when an explicit list does not fit the depth
        (e.g. a study's list for a 64-layer model run on a 4-layer test model).

    Returns
    -------
    tuple of int
        Sorted unique indices in ``[0, n_layers)``.

    Raises
    ------
    InvalidArgumentError
        A request outside the grammar, or indices outside ``[-n_layers, n_layers)`` without
        ``other_depths``.
    """
    spec = parse_layers(layers)
    if isinstance(spec, str):
        return _rule(spec, n_layers)
    out: set[int] = set()
    bad: list[int] = []
    for raw in spec:
        idx = raw + n_layers if raw < 0 else raw
        if not 0 <= idx < n_layers:
            bad.append(raw)
        out.add(idx)
    if bad and other_depths is not None:
        return _rule(parse_layer_rule(other_depths), n_layers)
    if bad:
        raise InvalidArgumentError(
            f"expected layers in [-{n_layers}, {n_layers - 1}] (the model has {n_layers} "
            f"decoder layers), got {bad[0]}; pick layers inside the model's depth"
        )
    return tuple(sorted(out))
