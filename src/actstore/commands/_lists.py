"""Comma-separated lists on the command line: prompt indices and stored layers.

Layer lists use the one layer grammar of :func:`actstore.extractors.parse_layers` (also
``extract --layers``, the TOML ``layers`` key and ``repair``). Commands that read a cache select
among the layers it stores, named by their model index: ``all`` or ``7,15,23``; the rules that
need the model's depth (``spaced:K``, negative indices) apply only when extracting.
"""

from __future__ import annotations

from actstore._validate import split_items
from actstore.errors import InvalidArgumentError

__all__ = ["int_list", "stored_layers"]


def int_list(text: str, what: str) -> list[int]:
    """``"3,5,8"`` -> ``[3, 5, 8]``; *what* names the option in the error."""
    items = split_items(text, what, "3,5,8")  # its own message, not the one below
    try:
        return [int(x) for x in items]
    except ValueError as exc:
        raise InvalidArgumentError(
            f"expected {what} as comma-separated integers like 3,5,8, got {text!r}"
        ) from exc


def stored_layers(text: str, what: str = "--layers") -> list[int] | None:
    """Stored layers by model index (``None`` for ``all``), parsed by the one layer grammar.

    Raises
    ------
    InvalidArgumentError
        Outside the grammar, or a rule that needs the model's depth (``spaced:K``, ``-1``).
    """
    from actstore.extractors import parse_layers

    parsed = parse_layers(text)
    if parsed == "all":
        return None
    if isinstance(parsed, str) or any(i < 0 for i in parsed):
        raise InvalidArgumentError(
            f"expected {what} as stored layer numbers like 7,15,23 (or all), got {text!r}; "
            "spaced:K and negative indices need the model's depth and apply to extract only "
            "(list the stored layers with `actstore info`)"
        )
    return list(parsed)
