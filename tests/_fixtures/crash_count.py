"""Reliability tests plugin: counts the crash harness's kill points (tried / survived)."""

from __future__ import annotations

from typing import Any

import pytest

_KILL_TEST = "test_kill_and_resume_is_bit_identical"
_counts = {"tried": 0, "survived": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # runs in the controller under xdist too, so the counts cover every worker
    if _KILL_TEST in report.nodeid and report.when == "call":
        _counts["tried"] += 1
        _counts["survived"] += int(report.passed)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _counts["tried"]:
        terminalreporter.write_line(
            f"crash harness: {_counts['tried']} kill points tried, {_counts['survived']} "
            "survived (resumed to a bit-identical cache)"
        )
