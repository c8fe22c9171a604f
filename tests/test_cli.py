"""The command-line dispatcher: help, version, and the one-line error contract."""

from __future__ import annotations

import subprocess
import sys

import pytest

from actstore import __version__
from actstore.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actstore", *args], capture_output=True, text=True, check=False
    )


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert __version__ in proc.stdout


def test_no_command_prints_help_and_fails(capsys) -> None:
    assert main([]) == 2
    assert "usage: actstore" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error() -> None:
    proc = run_cli("no-such-command")
    assert proc.returncode == 2
    assert proc.stderr.startswith("actstore: error: argument COMMAND: invalid choice")
    assert "Traceback" not in proc.stderr


def test_usage_errors_are_one_line_naming_the_help(capsys) -> None:
    for argv, needle in (
        (["extract", "--out", "x.zarr"], "the following arguments are required: --model"),
        (["probe", "fit", "c.zarr", "--prompt-set", "a", "--target", "v", "--cv", "abc"], "--cv"),
        (["prompts", "show"], "required"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith("actstore: error: ") and needle in err
        assert "--help' for usage" in err


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("prompts", "json.decoder.JSONDecodeError: Expecting value"),
        ("analysis", "ValueError: invalid literal for int() with base 10: 'seven'"),
    ],
)
def test_debug_shows_the_cause_of_an_error(tmp_path, case, cause) -> None:
    """Without --debug an error is one line (exit 2); with it, the traceback shows the exception
    the message was raised from ("direct cause"), not only the message."""
    if case == "prompts":
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"text": "2 x 3 =", "value": 6}\n{"text": oops}\n', encoding="utf-8")
        argv = ["prompts", "show", str(bad)]
        error = "PromptFileError"
    else:
        argv = ["probe", "fit", str(tmp_path / "c.zarr"), "--prompt-set", "a", "--target", "v"]
        argv += ["--layers", "1,seven", "--out", str(tmp_path / "probes")]
        error = "InvalidArgumentError"
    plain = run_cli(*argv)
    assert plain.returncode == 2
    assert plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr, plain.stderr
    debug = run_cli("--debug", *argv)
    assert debug.returncode == 1
    err = debug.stderr
    assert "The above exception was the direct cause of the following exception" in err, err
    assert cause in err, err
    # the cause comes first, our one-line message last
    assert err.index(cause) < err.rindex(error) and err.rstrip().splitlines()[-1].count(error)
