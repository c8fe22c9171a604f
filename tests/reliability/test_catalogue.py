"""The bad-input catalogue: each row's exact message and exit code, and the README table.

Command-line rows run as real processes (``python -m actstore ...`` with this checkout first on
``PYTHONPATH``): exit status 2, exactly one line on stderr starting ``actstore: error:``, no
traceback; the same command with ``--debug`` does show the traceback. API and config rows call
the library and check the exception class (an ActstoreError) and its message.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import actstore.errors as errors
from actstore.errors import ActstoreError
from tests.reliability._catalogue import ROWS, Row, message_regex, readme_section

_SRC = str(Path(errors.__file__).resolve().parents[1])


def _skip_unless_available(row: Row) -> None:
    if row.needs and importlib.util.find_spec(row.needs) is None:
        pytest.skip(f"{row.needs} is not in this checkout yet")


def _run_cli(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "actstore", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_catalogue_is_large_and_unique() -> None:
    assert len(ROWS) >= 25
    assert len({r.id for r in ROWS}) == len(ROWS)
    assert {r.where for r in ROWS} <= {"cli", "api", "config"}
    assert sum(r.where == "cli" for r in ROWS) >= 15
    for row in ROWS:
        assert issubclass(getattr(errors, row.error), ActstoreError), row.id
        assert (row.where == "cli") == bool(row.args) and (row.where != "cli") == bool(row.call)


def _params(rows: list[Row]) -> list[object]:
    return [pytest.param(r, id=r.id, marks=[pytest.mark.slow] if r.slow else []) for r in rows]


@pytest.mark.parametrize("row", _params([r for r in ROWS if r.where == "cli"]))
def test_cli_row(row: Row, catalogue_env: Path) -> None:
    _skip_unless_available(row)
    proc = _run_cli(catalogue_env, *row.args)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("actstore: error: "), lines[0]
    assert message_regex(row.message).fullmatch(lines[0][len("actstore: error: ") :]), lines[0]
    assert proc.returncode == row.exit_code, (proc.returncode, proc.stderr)
    assert proc.stdout == ""


@pytest.mark.parametrize("row", _params([r for r in ROWS if r.where != "cli"]))
def test_api_row(row: Row, catalogue_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _skip_unless_available(row)
    monkeypatch.chdir(catalogue_env)
    assert row.call is not None
    with pytest.raises(ActstoreError) as info:
        row.call(Path("."))
    assert type(info.value).__name__ == row.error, repr(info.value)
    message = str(info.value)
    assert "\n" not in message
    assert message_regex(row.message).fullmatch(message), message


def test_debug_shows_the_traceback(catalogue_env: Path) -> None:
    """The one way to get a traceback for a user error: --debug anywhere on the line."""
    proc = _run_cli(catalogue_env, "info", "missing.zarr", "--debug")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "StoreNotFoundError" in proc.stderr


def test_readme_table_matches_the_rows() -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text()
    assert readme_section() in text, (
        "README catalogue section is out of date: run `python -m tests.reliability._catalogue`"
    )
