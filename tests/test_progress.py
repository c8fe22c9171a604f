"""Progress on every long command: log lines when stderr is not a terminal, a bar when it is,
nothing with ``--quiet`` or ``--json``, and the commands' results unchanged either way."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from actstore import show_progress
from actstore._progress import Progress
from actstore.cli import main
from actstore.store import verify_cache

ROOT = Path(__file__).resolve().parents[1]

# command -> (arguments after the cache path, the name its log lines carry)
_COMMANDS = {
    "verify": (["verify", "{cache}"], "verify"),
    "repair": (["repair", "{cache}"], "repair: check"),
    "copy": (["copy", "{cache}", "{out}"], "copy arith"),
    "probe fit": (
        ["probe", "fit", "{cache}", "--prompt-set", "arith", "--target", "value", "--name", "v"],
        "probe fit",
    ),
    "detect": (
        ["detect", "{cache}", "--probes", "v", "--prompt-set", "arith", "--target", "value"],
        "detect",
    ),
}


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _args(command: str, cache: Path, out: Path, *extra: str) -> list[str]:
    return [a.format(cache=cache, out=out) for a in _COMMANDS[command][0]] + list(extra)


@pytest.mark.parametrize("command", list(_COMMANDS))
def test_long_commands_log_progress_and_are_silent_when_asked(
    command, synthetic_cache, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("ACTSTORE_PROGRESS_INTERVAL", "0")  # a line per step: nothing timed
    cache, _ = synthetic_cache
    if command == "detect":
        assert main(_args("probe fit", cache, tmp_path, "--quiet")) == 0
        capsys.readouterr()
    what = _COMMANDS[command][1]
    line = re.compile(rf"^actstore {re.escape(what)}: (\d+)(/(\d+))? \S", re.M)

    code, out, err = _run(capsys, _args(command, cache, tmp_path / "a.zarr"))
    assert code == 0, err
    counts = [(int(m.group(1)), m.group(3)) for m in line.finditer(err)]
    assert len(counts) >= 2, err  # periodic lines, then the last one
    assert [c for c, _ in counts] == sorted(c for c, _ in counts)
    lines = [x for x in err.splitlines() if not x.startswith("actstore: warning: ")]
    assert "done in" in lines[-1]  # the data's own warnings may follow the last progress line
    last, total = counts[-1]
    if total is not None:
        assert last == int(total)  # the whole job counted, no more

    code_q, out_q, err_q = _run(capsys, _args(command, cache, tmp_path / "b.zarr", "--quiet"))
    assert code_q == 0
    assert not line.search(err_q), err_q
    assert out_q == out.replace("a.zarr", "b.zarr")  # the result does not depend on progress

    if command != "copy":  # the commands with a --json report
        code_j, out_j, err_j = _run(capsys, _args(command, cache, tmp_path, "--json"))
        assert code_j == 0
        assert not line.search(err_j), err_j
        json.loads(out_j)


def test_a_pipe_gets_log_lines_from_the_real_command(synthetic_cache) -> None:
    cache, _ = synthetic_cache
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "ACTSTORE_PROGRESS_INTERVAL": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "actstore", "verify", str(cache)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^actstore verify: \d+/\d+ chunks", proc.stderr, re.M), proc.stderr
    assert "\r" not in proc.stderr  # log lines, no bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar() -> None:
    stream = _Terminal()
    with show_progress(), Progress("verify", 4, "chunks", stream=stream) as bar:
        for _ in range(4):
            bar.update()
    text = stream.getvalue()
    assert "actstore verify" in text and "4/4" in text and "\r" in text


def test_the_library_is_silent_unless_asked(synthetic_cache, capsys, monkeypatch) -> None:
    monkeypatch.setenv("ACTSTORE_PROGRESS_INTERVAL", "0")
    cache, _ = synthetic_cache
    assert verify_cache(cache).ok
    assert capsys.readouterr().err == ""
    with show_progress("log"):
        assert verify_cache(cache).ok
    assert "actstore verify:" in capsys.readouterr().err
