"""Reading and writing prompt files (JSONL and CSV), with errors naming file, line and field.

This module knows prompts, not sets: the readers return the prompts of a file and the writers take
anything iterable over prompts with ``label_names`` / ``span_names`` (a :class:`PromptSet`).
:class:`PromptSet` builds itself from what the readers return, so the dependency runs one way,
``_promptset -> _io``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from actstore._locations import located
from actstore.errors import PromptFileError
from actstore.prompts._prompt import FieldError, LabelValue, Prompt, check_prompt_fields

__all__ = [
    "PromptRows",
    "prompt_file_format",
    "read_csv_prompts",
    "read_jsonl_prompts",
    "write_csv",
    "write_jsonl",
]

_INT_RE = re.compile(r"[+-]?\d+")
_SPAN_CELL_RE = re.compile(r"\s*(\d+)\s*:\s*(\d+)\s*")


class PromptRows(Protocol):
    """What the writers need of a prompt set: its prompts in order and its column names."""

    @property
    def label_names(self) -> list[str]: ...

    @property
    def span_names(self) -> list[str]: ...

    def __iter__(self) -> Iterator[Prompt]: ...


def _fail(path: Path, line: int | None, field: str | None, message: str) -> PromptFileError:
    where = str(path)
    if line is not None:
        where += f" line {line}"
    if field is not None:
        where += f", field {field!r}"
    return PromptFileError(f"{where}: {message}")


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise PromptFileError(
            f"{path}: expected an existing prompt file, got no such file; check the path"
        ) from exc
    except IsADirectoryError as exc:
        raise PromptFileError(f"{path}: expected a prompt file, got a directory") from exc
    try:
        # utf-8-sig: spreadsheet programs put a byte-order mark in front of exported CSV files.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _fail(
            path,
            line,
            None,
            f"expected UTF-8 text, got byte 0x{data[exc.start]:02x} at column {column}; "
            "re-save the file as UTF-8",
        ) from exc


def _make_prompt(
    path: Path,
    line: int,
    text: Any,
    labels: dict[str, Any],
    spans: dict[str, Any],
    *,
    span_prefix: str = "spans.",
) -> Prompt:
    try:
        text, labels, spans = check_prompt_fields(text, labels, spans)
    except FieldError as exc:
        field = exc.field
        if field.startswith("spans."):  # CSV files name span columns "span:NAME"
            field = span_prefix + field[len("spans.") :]
        raise _fail(path, line, field, exc.message) from exc
    return Prompt(text=text, labels=labels, spans=spans)


def _finish(path: Path, prompts: list[Prompt]) -> tuple[Prompt, ...]:
    if not prompts:
        raise _fail(path, None, None, "expected at least one prompt, got none; is the file empty?")
    return tuple(prompts)


# -- JSONL -----------------------------------------------------------------------------------
class _Object(dict[str, Any]):
    """A parsed JSON object that remembers the keys it saw more than once."""

    duplicates: list[str]


def _keep_duplicates(pairs: list[tuple[str, Any]]) -> _Object:
    # json.loads keeps the last of duplicated keys silently; a prompt file with two "x" labels or
    # two spans of one name is a mistake worth naming.
    out = _Object()
    out.duplicates = []
    for key, value in pairs:
        if key in out:
            out.duplicates.append(key)
        out[key] = value
    return out


def _check_duplicates(path: Path, line: int, obj: Any, prefix: str = "") -> None:
    if isinstance(obj, _Object) and obj.duplicates:
        raise _fail(
            path,
            line,
            prefix + obj.duplicates[0],
            "expected each name once per record, got it twice; rename or remove one",
        )


def read_jsonl_prompts(path: str | os.PathLike[str]) -> tuple[Prompt, ...]:
    """The prompts of a JSONL file: one object per line with ``text``, labels and ``spans``.

    Blank lines are skipped. A label value of ``null`` means the prompt lacks that label.

    Raises
    ------
    PromptFileError
        If the file is missing, not UTF-8, holds no prompt, or a line is not a valid prompt
        (the message names the file, the line and the field).
    """
    path = Path(path)
    prompts = []
    for lineno, raw in enumerate(_read_text(path).split("\n"), start=1):
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        try:
            record = json.loads(raw, object_pairs_hook=_keep_duplicates)
        except RecursionError as exc:
            # json recurses per nesting level: "[[[[..." deep enough crashes it
            raise _fail(
                path,
                lineno,
                None,
                "expected one flat JSON object per line, got deeper nesting "
                "than Python's JSON parser can read",
            ) from exc
        except ValueError as exc:  # JSONDecodeError, or an integer literal over 4300 digits
            raise _fail(
                path, lineno, None, f"expected one JSON object per line, got invalid JSON ({exc})"
            ) from exc
        if not isinstance(record, dict):
            raise _fail(
                path,
                lineno,
                None,
                f"expected a JSON object, got {type(record).__name__}; write one object per line",
            )
        _check_duplicates(path, lineno, record)
        _check_duplicates(path, lineno, record.get("spans"), "spans.")
        if "text" not in record:
            raise _fail(path, lineno, "text", "expected a 'text' field, got none; add it")
        text = record.pop("text")
        spans = record.pop("spans", None)
        if spans is None:
            spans = {}
        if not isinstance(spans, dict):
            raise _fail(
                path,
                lineno,
                "spans",
                f"expected an object {{name: [start, end]}}, got {type(spans).__name__}",
            )
        for key, value in record.items():
            if isinstance(value, dict | list):
                raise _fail(
                    path,
                    lineno,
                    key,
                    f"expected a number, a string or null as label value, got {json.dumps(value)}"
                    "; labels are flat columns",
                )
        labels = {k: v for k, v in record.items() if v is not None}
        prompts.append(_make_prompt(path, lineno, text, labels, spans))
    return _finish(path, prompts)


def _atomic_write(path: str | os.PathLike[str], content: str) -> None:
    # Write beside the target, then rename: an interrupted write never leaves half a file.
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@located("write", "path", local=True)
def write_jsonl(prompt_set: PromptRows, path: str | os.PathLike[str]) -> None:
    """Write ``prompt_set`` as JSONL (UTF-8, one object per line)."""
    lines = [
        json.dumps(p.to_record(), ensure_ascii=False, allow_nan=False) + "\n" for p in prompt_set
    ]
    _atomic_write(path, "".join(lines))


# -- CSV -------------------------------------------------------------------------------------
def _format_cell(value: LabelValue) -> str:
    return value if isinstance(value, str) else repr(value)


@located("write", "path", local=True)
def write_csv(prompt_set: PromptRows, path: str | os.PathLike[str]) -> None:
    """Write ``prompt_set`` as CSV: ``text``, label columns, then ``span:NAME`` = ``start:end``.

    Missing labels and absent spans are empty cells.
    """
    labels, spans = prompt_set.label_names, prompt_set.span_names
    buf = io.StringIO()
    # CRLF (RFC 4180): the writer quotes any cell holding a character of the line terminator, so
    # a lone "\r" inside a text is quoted too and reads back unchanged.
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["text", *labels, *(f"span:{s}" for s in spans)])
    for p in prompt_set:
        row = [p.text]
        row += [_format_cell(p.labels[n]) if n in p.labels else "" for n in labels]
        row += [f"{p.spans[s][0]}:{p.spans[s][1]}" if s in p.spans else "" for s in spans]
        writer.writerow(row)
    _atomic_write(path, buf.getvalue())


def _parse_number(cell: str) -> int | float | None:
    cell = cell.strip()
    if _INT_RE.fullmatch(cell):
        try:
            return int(cell)
        except ValueError:  # over Python's 4300-digit limit: not a usable number
            return None
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_csv_prompts(path: str | os.PathLike[str]) -> tuple[Prompt, ...]:
    """The prompts of a CSV file with a header row.

    The ``text`` column is required. Every other column is a label, except ``span:NAME`` columns
    holding ``start:end`` character offsets. A label column whose non-empty cells all parse as
    numbers is numeric; otherwise its cells are kept as strings. Empty cells mean "missing".

    Raises
    ------
    PromptFileError
        If the file is missing, not UTF-8, not valid CSV, lacks the ``text`` column, holds no
        prompt, or a row is not a valid prompt (the message names the file, the line and the
        column).
    """
    path = Path(path)
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        # from None: the cause would be a bare StopIteration (the reader had no row), no news.
        raise _fail(path, 1, None, "expected a header row, got an empty file") from None
    except csv.Error as exc:
        raise _fail(path, reader.line_num, None, f"expected valid CSV, got {exc}") from exc
    header = [h.strip() for h in header]
    seen: set[str] = set()
    for h in header:
        if not h:
            raise _fail(path, 1, None, "expected a name for every column, got an empty one")
        if h in seen:
            raise _fail(path, 1, h, "expected each column name once, got it twice; rename one")
        seen.add(h)
    if "text" not in header:
        raise _fail(path, 1, "text", f"expected a 'text' column, got columns {header}; add it")

    rows: list[tuple[int, list[str]]] = []
    start = reader.line_num + 1  # first physical line of the next record (cells may span lines)
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                if len(row) != len(header):
                    raise _fail(
                        path,
                        start,
                        None,
                        f"expected {len(header)} cells (one per column), got {len(row)}",
                    )
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise _fail(path, start, None, f"expected valid CSV, got {exc}") from exc

    label_cols = [(i, h) for i, h in enumerate(header) if h != "text" and not h.startswith("span:")]
    span_cols = [(i, h[len("span:") :]) for i, h in enumerate(header) if h.startswith("span:")]
    numeric = {
        i: all(_parse_number(r[i]) is not None for _, r in rows if r[i].strip())
        for i, _ in label_cols
    }
    text_i = header.index("text")
    prompts = []
    for lineno, row in rows:
        labels: dict[str, Any] = {}
        for i, h in label_cols:
            if row[i].strip():
                labels[h] = _parse_number(row[i]) if numeric[i] else row[i]
        spans: dict[str, Any] = {}
        for i, s in span_cols:
            if not row[i].strip():
                continue
            m = _SPAN_CELL_RE.fullmatch(row[i])
            if m is None:
                raise _fail(
                    path, lineno, f"span:{s}", f"expected 'start:end' (integers), got {row[i]!r}"
                )
            spans[s] = (int(m.group(1)), int(m.group(2)))
        prompts.append(_make_prompt(path, lineno, row[text_i], labels, spans, span_prefix="span:"))
    return _finish(path, prompts)


def prompt_file_format(path: str | os.PathLike[str]) -> str:
    """``"jsonl"`` (``.jsonl``, ``.ndjson``) or ``"csv"``, chosen by the file's extension.

    Raises
    ------
    PromptFileError
        If the extension is neither.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise PromptFileError(
        f"{path}: expected a .jsonl or .csv prompt file, got suffix {suffix!r}; rename the file"
    )
