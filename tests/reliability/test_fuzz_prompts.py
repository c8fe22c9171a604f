"""Fuzz the JSONL and CSV prompt readers: any file ends in a PromptSet or an ActstoreError.

Inputs: raw bytes, JSON lines built from arbitrary JSON values (huge integers, NaN, deep nesting,
duplicate keys, odd span values) and CSV tables of arbitrary cells. A PromptSet that comes back
must also survive what the pipeline does next with it (hash, label columns, span arrays).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from actstore.errors import ActstoreError, PromptFileError
from actstore.prompts import PromptSet, read_prompt_file

SETTINGS = settings(
    max_examples=int(os.environ.get("ACTSTORE_FUZZ_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),
    st.text(max_size=12),
)
JSON = st.recursive(
    JSON_SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
KEY = st.one_of(st.sampled_from(["text", "spans", "x", "value", "span:a", ""]), st.text(max_size=6))


@st.composite
def records(draw: st.DrawFn) -> str:
    """One JSONL line: mostly objects with a text, sometimes anything at all."""
    if draw(st.integers(0, 5)) == 0:
        return json.dumps(draw(JSON))
    obj: dict[str, object] = {}
    if draw(st.booleans()):
        obj["text"] = draw(st.one_of(st.text(max_size=20), JSON))
    for key in draw(st.lists(KEY, max_size=4)):
        obj[key] = draw(JSON)
    if draw(st.booleans()):
        obj["spans"] = draw(
            st.one_of(
                JSON,
                st.dictionaries(
                    st.text(max_size=4), st.lists(st.integers(-3, 30), max_size=3), max_size=3
                ),
            )
        )
    return json.dumps(obj)


def _read(suffix: str, data: bytes) -> PromptSet | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            result = read_prompt_file(path)
        except ActstoreError:
            return None
    assert isinstance(result, PromptSet)
    result.content_hash()  # what extraction does next with a prompt set
    for name in result.label_names:
        result.label_array(name)
    for name in result.span_names:
        result.span_array(name)
    return result


@SETTINGS
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".csv"]))
@example(data=b"\xff\xfe", suffix=".jsonl")
@example(data=b"[" * 100_000, suffix=".jsonl")
@example(data=b'{"text": "a", "x": ' + b"1" * 5000 + b"}", suffix=".jsonl")
@example(data=b"text,x\na," + b"1" * 5000 + b"\n", suffix=".csv")
@example(data=b'{"text": "a", "x": ' + b"9" * 400 + b"}", suffix=".jsonl")
def test_any_bytes(data: bytes, suffix: str) -> None:
    _read(suffix, data)


@SETTINGS
@given(lines=st.lists(records(), max_size=5), crlf=st.booleans())
def test_jsonl_records(lines: list[str], crlf: bool) -> None:
    _read(".jsonl", ("\r\n" if crlf else "\n").join(lines).encode())


CELL = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["", "1", "-2.5", "nan", "inf", "1e999", "0:3", "3:1", "a:b", "9" * 5000]),
)


@SETTINGS
@given(
    header=st.lists(
        st.one_of(st.sampled_from(["text", "x", "span:a", "span:", ""]), st.text(max_size=5)),
        max_size=4,
    ),
    rows=st.lists(st.lists(CELL, max_size=5), max_size=5),
)
def test_csv_tables(header: list[str], rows: list[list[str]]) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    _read(".csv", buf.getvalue().encode())


@pytest.mark.parametrize(
    ("suffix", "data", "fragment"),
    [
        (".jsonl", b"[" * 100_000, "line 1"),
        (".jsonl", b'{"text": "a", "x": ' + b"1" * 5000 + b"}", "line 1"),
        (".jsonl", b'{"text": "a", "x": ' + b"9" * 400 + b"}", "field 'x'"),
    ],
)
def test_found_by_fuzzing_named(suffix: str, data: bytes, fragment: str, tmp_path: Path) -> None:
    """Inputs the fuzzer found crashing the readers now get a PromptFileError naming the line."""
    path = tmp_path / f"p{suffix}"
    path.write_bytes(data)
    with pytest.raises(PromptFileError, match=fragment):
        read_prompt_file(path)
