"""One prompt: its text, its label columns and its named character spans.

Validation lives in :func:`check_prompt_fields`, which reports the offending field, so the
constructor and the file readers (which add file and line) share one set of rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from actstore._reserved import reserved_label_problem
from actstore.errors import InvalidArgumentError

__all__ = ["RESERVED_KEYS", "FieldError", "LabelValue", "Prompt", "check_prompt_fields"]

LabelValue = int | float | str

#: Keys a label may not use: they are the JSONL record keys, and ``span:`` is the CSV prefix.
RESERVED_KEYS = ("text", "spans")


class FieldError(Exception):
    """Internal: one field of a prompt record is invalid (``field`` names it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _check_label(name: Any, value: Any) -> LabelValue:
    if not isinstance(name, str) or not name:
        raise FieldError(str(name), f"expected a non-empty string as label name, got {name!r}")
    if name in RESERVED_KEYS or name.startswith("span:"):
        raise FieldError(
            name,
            f"expected a label name other than 'text', 'spans' or 'span:*', got {name!r}; "
            "rename the label",
        )
    problem = reserved_label_problem(name)
    if problem is not None:
        raise FieldError(
            name, f"expected a label name the cache does not use itself, got {problem}; rename it"
        )
    # bool is an int subclass but a label of True is almost always a mistake in a numeric column.
    if isinstance(value, bool | np.bool_):
        raise FieldError(name, f"expected a number or a string, got the boolean {value!r}")
    if isinstance(value, int | np.integer):
        try:
            float(value)  # numeric labels become float64 columns
        except OverflowError as exc:
            raise FieldError(
                name,
                f"expected a number within float64 range, got an integer of "
                f"{int(value).bit_length()} bits; store it as a string label instead",
            ) from exc
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        if not math.isfinite(value):
            raise FieldError(
                name, f"expected a finite number, got {value!r}; leave the label out instead"
            )
        return value
    if isinstance(value, str):
        return value
    raise FieldError(name, f"expected a number or a string, got {type(value).__name__} {value!r}")


def _check_span(name: Any, value: Any, n_chars: int) -> tuple[int, int]:
    field_name = f"spans.{name}"
    if not isinstance(name, str) or not name:
        raise FieldError(field_name, f"expected a non-empty string as span name, got {name!r}")
    ok = (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise FieldError(field_name, f"expected [start, end] (two integers), got {value!r}")
    start, end = int(value[0]), int(value[1])
    if not 0 <= start < end <= n_chars:
        raise FieldError(
            field_name,
            f"expected 0 <= start < end <= {n_chars} (the text length), got [{start}, {end}]; "
            "spans are character offsets [start, end) into the text",
        )
    return start, end


def check_prompt_fields(
    text: Any, labels: Mapping[Any, Any], spans: Mapping[Any, Any]
) -> tuple[str, dict[str, LabelValue], dict[str, tuple[int, int]]]:
    """Validate and normalise one prompt's fields; raise :class:`FieldError` naming the field."""
    if not isinstance(text, str):
        raise FieldError("text", f"expected a string, got {type(text).__name__} {text!r}")
    if not text.strip():
        raise FieldError("text", f"expected a non-empty prompt, got {text!r}; drop the record")
    norm_labels = {name: _check_label(name, value) for name, value in labels.items()}
    norm_spans = {name: _check_span(name, value, len(text)) for name, value in spans.items()}
    # Spans may be disjoint or nested; spans that cross each other are a sign of wrong offsets.
    ordered = sorted(norm_spans.items(), key=lambda kv: (kv[1][0], -kv[1][1]))
    for i, (name_a, (sa, ea)) in enumerate(ordered):
        for name_b, (sb, eb) in ordered[i + 1 :]:
            if sb >= ea:
                break
            if eb > ea:
                raise FieldError(
                    f"spans.{name_b}",
                    f"expected spans that are disjoint or nested, got {name_a!r} [{sa}, {ea}) "
                    f"crossing {name_b!r} [{sb}, {eb}); fix the offsets",
                )
    return text, norm_labels, norm_spans


@dataclass(frozen=True, kw_only=True)
class Prompt:
    """One prompt of a :class:`PromptSet`.

    Parameters
    ----------
    text : str
        The prompt text, non-empty.
    labels : Mapping[str, int | float | str]
        Label columns, e.g. ``{"x": 7, "y": 8, "value": 56, "template": "times"}``. Numbers must
        be finite; numpy scalars are converted to Python numbers.
    spans : Mapping[str, tuple[int, int]]
        Named character spans ``[start, end)`` into ``text``, e.g. ``{"answer": (15, 17)}``.
        Spans are non-empty, inside the text, and either disjoint or nested.
    """

    text: str
    labels: Mapping[str, LabelValue] = field(default_factory=dict)
    spans: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            text, labels, spans = check_prompt_fields(self.text, self.labels, self.spans)
        except FieldError as exc:
            raise InvalidArgumentError(f"prompt field {exc.field!r}: {exc.message}") from exc
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "labels", MappingProxyType(labels))
        object.__setattr__(self, "spans", MappingProxyType(spans))

    def __hash__(self) -> int:
        return hash((self.text, tuple(self.labels.items()), tuple(self.spans.items())))

    def span_text(self, name: str) -> str:
        """The characters of span ``name`` (``KeyError`` if the prompt has no such span)."""
        start, end = self.spans[name]
        return self.text[start:end]

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict: ``text``, the labels as top-level keys, then ``spans``."""
        record: dict[str, Any] = {"text": self.text}
        record.update(self.labels)
        record["spans"] = {name: [s, e] for name, (s, e) in self.spans.items()}
        return record
