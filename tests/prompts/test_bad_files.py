"""Bad prompt files: one clear error naming the file, the line and the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actstore.errors import ActstoreError, PromptFileError
from actstore.prompts import PromptSet, load_prompts

GOOD = '{"text": "7 times 8 equals 56", "value": 56, "spans": {"answer": [17, 19]}}'

# (JSONL lines after one good line, expected line, expected field or None, message fragment)
JSONL_CASES = [
    ('{"value": 3}', 2, "text", "expected a 'text' field"),
    ('{"text": "", "value": 3}', 2, "text", "expected a non-empty prompt"),
    ('{"text": "  \\t "}', 2, "text", "expected a non-empty prompt"),
    ('{"text": 12}', 2, "text", "expected a string"),
    ('{"text": "abc", "spans": {"a": [1, 9]}}', 2, "spans.a", "0 <= start < end <= 3"),
    ('{"text": "abc", "spans": {"a": [-1, 2]}}', 2, "spans.a", "0 <= start < end"),
    ('{"text": "abc", "spans": {"a": [2, 1]}}', 2, "spans.a", "0 <= start < end"),
    ('{"text": "abcd", "spans": {"a": [0, 2], "b": [1, 3]}}', 2, "spans.b", "disjoint or nested"),
    ('{"text": "abc", "spans": {"a": [0, 1], "a": [1, 2]}}', 2, "spans.a", "once per record"),
    ('{"text": "abc", "x": 1, "x": 2}', 2, "x", "once per record"),
    ('{"text": "abc", "spans": {"a": "0:1"}}', 2, "spans.a", "expected [start, end]"),
    ('{"text": "abc", "spans": [[0, 1]]}', 2, "spans", "expected an object"),
    ('{"text": "abc", "x": {"y": 1}}', 2, "x", "labels are flat columns"),
    ('{"text": "abc", "x": true}', 2, "x", "got the boolean"),
    ('{"text": "abc", "x": NaN}', 2, "x", "expected a finite number"),
    ('{"text": "abc"', 2, None, "invalid JSON"),
    ('["abc"]', 2, None, "expected a JSON object"),
    ('\n\n{"text": "abc", "span:x": 1}', 4, "span:x", "label name other than"),
]


@pytest.mark.parametrize(("bad", "line", "field", "fragment"), JSONL_CASES)
def test_jsonl_errors_name_file_line_field(
    tmp_path: Path, bad: str, line: int, field: str | None, fragment: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + "\n" + bad + "\n" + GOOD + "\n", encoding="utf-8")
    with pytest.raises(PromptFileError) as info:
        PromptSet.from_jsonl(path)
    msg = str(info.value)
    where = f"{path} line {line}" + (f", field {field!r}" if field else "") + ": "
    assert msg.startswith(where), msg
    assert fragment in msg
    assert "\n" not in msg
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ActstoreError)


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_non_utf8_names_line_and_byte(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"latin1.{suffix}"
    first = GOOD if suffix == "jsonl" else "text,value"
    path.write_bytes(
        (first + "\n").encode() + b'{"text": "caf\xe9"}\n' if suffix == "jsonl"
        else (first + "\n2 times 3 is 6,6\n").encode() + b"caf\xe9,1\n"
    )  # fmt: skip
    line = 2 if suffix == "jsonl" else 3
    with pytest.raises(PromptFileError, match=rf"line {line}: expected UTF-8 text, got byte 0xe9"):
        load_prompts(path)


def test_empty_files(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(PromptFileError, match="expected at least one prompt, got none"):
        PromptSet.from_jsonl(tmp_path / "e.jsonl")
    (tmp_path / "e.csv").write_text("", encoding="utf-8")
    with pytest.raises(PromptFileError, match="expected a header row"):
        PromptSet.from_csv(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("text,value\n", encoding="utf-8")
    with pytest.raises(PromptFileError, match="expected at least one prompt"):
        PromptSet.from_csv(tmp_path / "h.csv")


# (CSV content, expected line, field or None, fragment)
CSV_CASES = [
    ("value\n3\n", 1, "text", "expected a 'text' column"),
    ("text,x,x\na,1,2\n", 1, "x", "each column name once"),
    ("text,,x\na,1,2\n", 1, None, "a name for every column"),
    ("text,x\na,1\nb,1,2\n", 3, None, "expected 2 cells"),
    ("text,x\na,1\n,2\n", 3, "text", "expected a non-empty prompt"),
    ("text,span:a\nabc,1-2\n", 2, "span:a", "expected 'start:end'"),
    ("text,span:a\nabc,0:1\nabc,2:7\n", 3, "span:a", "0 <= start < end <= 3"),
    ('text,x\n"multi\nline",1\nabc,0:1,\n', 4, None, "expected 2 cells"),
]


@pytest.mark.parametrize(("content", "line", "field", "fragment"), CSV_CASES)
def test_csv_errors_name_file_line_field(
    tmp_path: Path, content: str, line: int, field: str | None, fragment: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PromptFileError) as info:
        PromptSet.from_csv(path)
    msg = str(info.value)
    where = f"{path} line {line}" + (f", field {field!r}" if field else "") + ": "
    assert msg.startswith(where), msg
    assert fragment in msg


def test_other_suffix_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("hi", encoding="utf-8")
    from actstore.prompts import read_prompt_file

    with pytest.raises(PromptFileError, match=re.escape("expected a .jsonl or .csv prompt file")):
        read_prompt_file(tmp_path / "p.txt")
    with pytest.raises(PromptFileError, match="no such file"):
        PromptSet.from_jsonl(tmp_path / "none.jsonl")
