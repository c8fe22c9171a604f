"""The command-line dispatcher: help, version, and the one-line error contract."""

from __future__ import annotations

import subprocess
import sys

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
    assert "invalid choice" in proc.stderr
    assert "Traceback" not in proc.stderr
