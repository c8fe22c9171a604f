"""The bad-input catalogue: each row's exact message and exit code, and the docs table.

Command-line rows run as real processes (``python -m actstore ...`` with this checkout first on
``PYTHONPATH``): exit status 2, exactly one line on stderr starting ``actstore: error:``, no
traceback; the same command with ``--debug`` does show the traceback. API and config rows call
the library and check the exception class (an ActstoreError) and its message.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import actstore.errors as errors
from actstore.errors import ActstoreError
from tests.reliability._catalogue import DOCS_PAGE, ROWS, Row, docs_section, message_regex

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


#: CLI rows that always run as real processes; the others do in `make test-slow` (a process
#: costs seconds of imports on a busy 2-core machine) and in-process in the default suite.
ALWAYS_AS_PROCESS = {
    "missing-cache",
    "pickle-codec",
    "shard-spec",
    "unknown-target",
    "config-unknown-key",
}


def _check_stderr(stderr: str, row: Row) -> None:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("actstore: error: "), lines[0]
    assert message_regex(row.message).fullmatch(lines[0][len("actstore: error: ") :]), lines[0]


_CLI = [r for r in ROWS if r.where == "cli"]


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(r, id=r.id, marks=[] if r.id in ALWAYS_AS_PROCESS else [pytest.mark.slow])
        for r in _CLI
    ],
)
def test_cli_row(row: Row, catalogue_env: Path) -> None:
    """The row as a user runs it: a fresh ``python -m actstore`` process."""
    _skip_unless_available(row)
    proc = _run_cli(catalogue_env, *row.args)
    _check_stderr(proc.stderr, row)
    assert proc.returncode == row.exit_code, (proc.returncode, proc.stderr)
    assert proc.stdout == ""


@pytest.mark.parametrize("row", _params([r for r in _CLI if r.id not in ALWAYS_AS_PROCESS]))
def test_cli_row_in_process(
    row: Row, catalogue_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The same through ``actstore.cli.main`` (the dispatcher ``python -m actstore`` calls): an
    exception other than an ActstoreError would escape here and fail the test."""
    from actstore.cli import main

    _skip_unless_available(row)
    monkeypatch.chdir(catalogue_env)
    code = main(list(row.args))
    out = capsys.readouterr()
    _check_stderr(out.err, row)
    assert code == row.exit_code
    assert out.out == ""


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


@pytest.mark.parametrize(
    "args",
    [
        ("extract", "--model", "model", "--prompts", "good.jsonl", "--out", "n.zarr",
         "--max-batch-tokens", "abc"),
        ("probe", "fit", "cache.zarr"),
        ("copy", "cache.zarr"),
    ],
    ids=["not-an-int", "missing-options", "missing-argument"],
)  # fmt: skip
def test_usage_errors_exit_2_without_traceback(args: tuple[str, ...], catalogue_env: Path) -> None:
    """What argparse rejects: one line naming the problem and the command's --help; exit 2."""
    proc = _run_cli(catalogue_env, *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("actstore: error: "), proc.stderr
    assert f"see 'actstore {args[0]}" in lines[0] and "--help' for usage" in lines[0]


def test_docs_table_matches_the_rows() -> None:
    """The site's error catalogue page is the rendered ROWS, every row in it, in order."""
    text = DOCS_PAGE.read_text()
    assert docs_section() in text, (
        "docs/reference/errors.md is out of date: run `python -m tests.reliability._catalogue`"
    )
    # every row's message appears, numbered in ROWS order (a row dropped by the renderer fails)
    numbers = [int(m) for m in re.findall(r"^\| (\d+) \|", text, flags=re.M)]
    assert numbers == list(range(1, len(ROWS) + 1))
