"""``actstore prompts list|show|write`` through the real dispatcher."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from actstore.cli import main
from actstore.prompts import PromptSet, generate, list_generators


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "list"]) == 0
    out = capsys.readouterr().out
    for name in list_generators():
        assert name in out
    assert "cot='none'" in out
    assert main(["prompts", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ke = next(r for r in rows if r["name"] == "kinetic_energy")
    assert ke["options"] == {"cot": "none", "formats": None}
    assert ke["default_n"] == 50


def test_show_matches_generate(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["prompts", "show", "kinetic_energy", "--n", "3", "--seed", "4", "-o", "cot=worked"]
    assert main([*args, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    expected = generate("kinetic_energy", 3, seed=4, cot="worked")
    assert shown["content_hash"] == expected.content_hash()
    assert [r["text"] for r in shown["prompts"]] == expected.texts
    assert shown["source"]["options"]["cot"] == "worked"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert expected[0].text in out
    assert f"ke='{expected[0].span_text('ke')}'" in out


def test_show_defaults_to_five(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["prompts", "show", "squaring", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_prompts"] == 5
    path = tmp_path / "three.jsonl"
    generate("squaring", 3).to_jsonl(path)
    assert main(["prompts", "show", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_prompts"] == 3


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_write_round_trips(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"train.{suffix}"
    argv = [
        "prompts",
        "write",
        "multiplication",
        str(out),
        "--n",
        "20",
        "--seed",
        "2",
        "-o",
        "low=3",
    ]
    assert main(argv) == 0
    expected = generate("multiplication", 20, seed=2, low=3)
    assert expected.content_hash() in capsys.readouterr().out
    assert getattr(PromptSet, f"from_{suffix}")(out).content_hash() == expected.content_hash()
    # Refuses to overwrite without --force, and leaves the file as it was.
    before = out.read_bytes()
    assert main(argv[:-2]) == 2
    assert "pass --force to overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main([*argv[:-2], "--force"]) == 0
    assert out.read_bytes() != before


def test_write_uses_generator_default_n(tmp_path: Path) -> None:
    out = tmp_path / "ke.jsonl"
    assert main(["prompts", "write", "kinetic_energy", str(out)]) == 0
    assert len(PromptSet.from_jsonl(out)) == 50


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["prompts", "show", "nope"], "expected a generator name"),
        (["prompts", "show", "kinetic_energy", "-o", "cot=loud"], "expected cot in"),
        (["prompts", "show", "kinetic_energy", "-o", "cot"], "KEY=VALUE"),
        (["prompts", "show", "squaring", "-o", "colour=red"], "expected options of generator"),
        (["prompts", "write", "squaring", "out.txt"], "ending in .jsonl or .csv"),
        (["prompts", "write", "squaring", "no/such/dir/o.csv"], "existing folder"),
    ],
)
def test_errors_are_one_line_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("actstore: error: ")
    assert fragment in err
    assert err.count("\n") == 1


def test_bad_file_in_a_subprocess_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"value": 1}\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "actstore", "prompts", "show", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    expected = f"{path} line 2, field 'text': expected a 'text' field, got none; add it"
    assert proc.stderr == f"actstore: error: {expected}\n"


def test_help_has_examples() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "actstore", "prompts", "write", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "examples:" in proc.stdout
