"""A named, ordered, immutable list of prompts with label columns and span names."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, overload

import numpy as np

from actstore.errors import InvalidArgumentError, UnknownNameError
from actstore.prompts._io import (
    prompt_file_format,
    read_csv_prompts,
    read_jsonl_prompts,
    write_csv,
    write_jsonl,
)
from actstore.prompts._prompt import Prompt

__all__ = ["PromptSet", "read_prompt_file"]


def _ordered_union(groups: Iterable[Iterable[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        for name in group:
            seen.setdefault(name, None)
    return list(seen)


@dataclass(frozen=True, kw_only=True)
class PromptSet:
    """A named, ordered, immutable set of :class:`Prompt` objects.

    Parameters
    ----------
    name : str
        The set's name (the cache group it is extracted into). Not part of :meth:`content_hash`.
    prompts : Sequence[Prompt]
        The prompts, in order; stored as a tuple. At least one.
    source : Mapping[str, Any]
        Where the set came from (generator, n, seed, options; or the file), JSON-serialisable.
        Informational: not part of :meth:`content_hash`, nor of equality.

    Notes
    -----
    ``label_names`` and ``span_names`` are the union over prompts in first-seen order. A prompt
    may lack a label (e.g. ``y`` in a squaring prompt) or a span (e.g. ``distance`` in a drop
    format): :meth:`label_array` fills NaN or ``""``, :meth:`span_array` fills ``-1``.
    """

    name: str
    prompts: tuple[Prompt, ...]
    source: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgumentError(
                f"expected a non-empty string as prompt-set name, got {self.name!r}"
            )
        prompts = tuple(self.prompts)
        if not prompts:
            raise InvalidArgumentError("expected at least one prompt, got none")
        for i, p in enumerate(prompts):
            if not isinstance(p, Prompt):
                raise InvalidArgumentError(
                    f"expected Prompt objects, got {type(p).__name__} at index {i}; "
                    "wrap it as Prompt(text=..., labels=..., spans=...)"
                )
        object.__setattr__(self, "prompts", prompts)
        object.__setattr__(self, "source", MappingProxyType(dict(self.source)))

    def __hash__(self) -> int:
        return hash((self.name, self.prompts))

    # -- sequence protocol ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    @overload
    def __getitem__(self, index: int) -> Prompt: ...
    @overload
    def __getitem__(self, index: slice) -> PromptSet: ...
    def __getitem__(self, index: int | slice) -> Prompt | PromptSet:
        if isinstance(index, slice):
            return self.subset(range(len(self))[index])
        return self.prompts[index]

    def subset(self, indices: Iterable[int], *, name: str | None = None) -> PromptSet:
        """A new set with the prompts at ``indices`` (in that order)."""
        picked = tuple(self.prompts[int(i)] for i in indices)
        return PromptSet(name=name or self.name, prompts=picked, source=self.source)

    # -- columns ----------------------------------------------------------------------------
    @cached_property
    def _label_names(self) -> tuple[str, ...]:
        return tuple(_ordered_union(p.labels for p in self.prompts))

    @cached_property
    def _span_names(self) -> tuple[str, ...]:
        return tuple(_ordered_union(p.spans for p in self.prompts))

    @property
    def label_names(self) -> list[str]:
        """Label column names, in first-seen order."""
        return list(self._label_names)

    @property
    def span_names(self) -> list[str]:
        """Span names, in first-seen order."""
        return list(self._span_names)

    @property
    def texts(self) -> list[str]:
        """The prompt texts, in order."""
        return [p.text for p in self.prompts]

    def label_kind(self, name: str) -> str:
        """``"numeric"`` if every present value of label ``name`` is a number, else ``"str"``."""
        self._require_label(name)
        values = [p.labels[name] for p in self.prompts if name in p.labels]
        return "str" if any(isinstance(v, str) for v in values) else "numeric"

    def label_array(self, name: str) -> np.ndarray:
        """One label column as an array over the ``prompt`` dimension.

        Parameters
        ----------
        name : str
            One of :attr:`label_names`.

        Returns
        -------
        numpy.ndarray
            Shape ``(prompt,)``: float64 (NaN where a prompt lacks the label) when every present
            value is a number; otherwise an object array of ``str`` (``""`` where missing;
            numbers as text).

        Raises
        ------
        UnknownNameError
            If ``name`` is not a label of the set.
        """
        if self.label_kind(name) == "numeric":
            return np.array(
                [float(p.labels.get(name, np.nan)) for p in self.prompts], dtype=np.float64
            )
        out = np.empty(len(self.prompts), dtype=object)
        out[:] = [_as_str(p.labels[name]) if name in p.labels else "" for p in self.prompts]
        return out

    def span_array(self, name: str) -> np.ndarray:
        """Span ``name`` as character offsets, one row per prompt.

        Parameters
        ----------
        name : str
            One of :attr:`span_names`.

        Returns
        -------
        numpy.ndarray
            int64 of shape ``(prompt, 2)``: character ``[start, end)``; ``-1`` where absent.

        Raises
        ------
        UnknownNameError
            If ``name`` is not a span of the set.
        """
        if name not in self._span_names:
            raise UnknownNameError(
                f"expected a span name of set {self.name!r} ({', '.join(self._span_names)}), "
                f"got {name!r}"
            )
        return np.array([p.spans.get(name, (-1, -1)) for p in self.prompts], dtype=np.int64)

    def _require_label(self, name: str) -> None:
        if name not in self._label_names:
            raise UnknownNameError(
                f"expected a label name of set {self.name!r} ({', '.join(self._label_names)}), "
                f"got {name!r}"
            )

    # -- identity ---------------------------------------------------------------------------
    def canonical_json(self) -> str:
        """The canonical serialisation that :meth:`content_hash` digests.

        One JSON array of ``[text, labels, spans]`` per prompt, keys sorted, ASCII-escaped, no
        whitespace; floats in Python's shortest round-trip form, so the hash is the same on any
        machine. The set's name and source are not included.
        """
        rows = [
            [p.text, dict(p.labels), {k: list(v) for k, v in p.spans.items()}] for p in self.prompts
        ]
        return json.dumps(
            rows, sort_keys=True, ensure_ascii=True, separators=(",", ":"), allow_nan=False
        )

    def content_hash(self) -> str:
        """sha256 hex digest of :meth:`canonical_json` (texts, labels, spans, order)."""
        return hashlib.sha256(self.canonical_json().encode("ascii")).hexdigest()

    # -- files ------------------------------------------------------------------------------
    def to_jsonl(self, path: str | os.PathLike[str]) -> None:
        """Write one JSON object per prompt: ``text``, labels, ``spans: {name: [start, end]}``.

        The file is written beside ``path`` and renamed into place (never half written).

        Parameters
        ----------
        path : str or os.PathLike
            A local file path.

        Raises
        ------
        InvalidArgumentError
            If ``path`` is a URL.
        StorageError, ReadOnlyError, DiskFullError
            If the file cannot be written.
        """
        write_jsonl(self, path)

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write a CSV: ``text``, one column per label, one ``span:NAME`` column (``start:end``).

        Missing labels and absent spans are empty cells; the file is written beside ``path`` and
        renamed into place.

        Parameters
        ----------
        path : str or os.PathLike
            A local file path.

        Raises
        ------
        InvalidArgumentError
            If ``path`` is a URL.
        StorageError, ReadOnlyError, DiskFullError
            If the file cannot be written.
        """
        write_csv(self, path)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str], name: str | None = None) -> PromptSet:
        """Read a JSONL prompt file; ``name`` defaults to the file's stem.

        Raises
        ------
        PromptFileError
            If the file is missing, empty or holds an invalid line (named in the message).
        """
        return cls._from_file(path, name, "jsonl", read_jsonl_prompts(path))

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], name: str | None = None) -> PromptSet:
        """Read a CSV prompt file; ``name`` defaults to the file's stem.

        Raises
        ------
        PromptFileError
            If the file is missing, empty or holds an invalid row (named in the message).
        """
        return cls._from_file(path, name, "csv", read_csv_prompts(path))

    @classmethod
    def _from_file(
        cls, path: str | os.PathLike[str], name: str | None, fmt: str, prompts: tuple[Prompt, ...]
    ) -> PromptSet:
        path = Path(path)
        return cls(
            name=name or path.stem, prompts=prompts, source={"file": str(path), "format": fmt}
        )

    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, Any]],
        *,
        name: str,
        source: Mapping[str, Any] | None = None,
    ) -> PromptSet:
        """Build a set from dicts shaped like JSONL lines (``text``, labels, optional ``spans``).

        Parameters
        ----------
        records : sequence of mappings
            One per prompt: ``text``, optional ``spans: {name: (start, end)}``, every other key a
            label.
        name : str
            The set's name.
        source : mapping, optional
            Where the records came from (informational).

        Returns
        -------
        PromptSet
            The prompts, in order.

        Raises
        ------
        InvalidArgumentError
            If a record is not a valid prompt (the message names the field), or there is none.
        """
        prompts = []
        for rec in records:
            rec = dict(rec)
            text = rec.pop("text", None)
            spans = rec.pop("spans", None) or {}
            prompts.append(Prompt(text=text, labels=rec, spans=spans))  # type: ignore[arg-type]
        return cls(name=name, prompts=tuple(prompts), source=source or {})


def _as_str(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def read_prompt_file(path: str | os.PathLike[str], *, name: str | None = None) -> PromptSet:
    """Read a ``.jsonl`` / ``.ndjson`` or ``.csv`` prompt file, chosen by extension.

    Parameters
    ----------
    path : str or os.PathLike
        The prompt file (see the prompt-file format in the reference).
    name : str, optional
        The set's name; defaults to the file's stem.

    Returns
    -------
    PromptSet
        The file's prompts, in file order; ``source`` names the file and its format.

    Raises
    ------
    PromptFileError
        If the extension is neither, the file is missing, empty or not UTF-8, or a line/row is not
        a valid prompt (the message names the file, the line and the field).
    """
    if prompt_file_format(path) == "jsonl":
        return PromptSet.from_jsonl(path, name=name)
    return PromptSet.from_csv(path, name=name)
