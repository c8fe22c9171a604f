"""Render a template into text while recording the character span of every field."""

from __future__ import annotations

import string
from collections.abc import Collection, Mapping
from decimal import Decimal
from fractions import Fraction

from actstore.errors import InvalidArgumentError

__all__ = ["format_number", "render"]

_FORMATTER = string.Formatter()


def render(
    template: str,
    values: Mapping[str, str],
    *,
    names: Mapping[str, str] | None = None,
    plain: Collection[str] = (),
) -> tuple[str, dict[str, tuple[int, int]]]:
    """Fill ``{field}`` placeholders with ``values`` and return ``(text, spans)``.

    Each field, except those in ``plain`` (words such as an object's name), becomes a span named
    ``names.get(field, field)``. A name written more than once gets ``_2``, ``_3``... on its
    later occurrences, so span names stay unique while every written quantity keeps a span.
    Format specs and conversions are not supported.
    """
    names = names or {}
    parts: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    counts: dict[str, int] = {}
    pos = 0
    for literal, field_name, spec, conversion in _FORMATTER.parse(template):
        parts.append(literal)
        pos += len(literal)
        if field_name is None:
            continue
        if spec or conversion:
            raise InvalidArgumentError(
                f"expected plain {{name}} fields in template, got a format spec in {template!r}"
            )
        if field_name not in values:
            raise InvalidArgumentError(
                f"expected a value for field {field_name!r} of template {template!r}, got none"
            )
        piece = values[field_name]
        if field_name in plain:
            parts.append(piece)
            pos += len(piece)
            continue
        span_name = names.get(field_name, field_name)
        counts[span_name] = counts.get(span_name, 0) + 1
        if counts[span_name] > 1:
            span_name = f"{span_name}_{counts[span_name]}"
        spans[span_name] = (pos, pos + len(piece))
        parts.append(piece)
        pos += len(piece)
    return "".join(parts), spans


def format_number(value: int | float | Fraction) -> str:
    """Write a number exactly and shortly: ``56``, ``40.5``, ``0.45``.

    Integral values lose their decimal point; a fraction must have a finite decimal expansion.
    """
    if isinstance(value, int):
        return str(value)
    frac = Fraction(value)
    if frac.denominator == 1:
        return str(frac.numerator)
    den = frac.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        raise InvalidArgumentError(f"expected a number with a finite decimal form, got {value!r}")
    text = format(Decimal(frac.numerator) / Decimal(frac.denominator), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
