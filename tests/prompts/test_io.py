"""JSONL and CSV round trips, and the errors for bad prompt files (file, line, field)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actstore.prompts import Prompt, PromptSet, generate, load_prompts


def _sets() -> list[PromptSet]:
    text = 'Quote "x", comma, and\nnewline: 12'
    odd = PromptSet(
        name="odd",
        prompts=(
            Prompt(text=text, labels={"v": 1.5, "tag": "a,b"},
                   spans={"num": (text.index("12"), len(text))}),
            Prompt(text="Ünïcödé × 3 = ½", labels={"v": -2, "tag": "β"}, spans={}),
            Prompt(text="no labels here", labels={}, spans={"all": (0, 14)}),
        ),
    )  # fmt: skip
    return [
        generate("arithmetic", 30, seed=1),
        generate("kinetic_energy", 30, seed=2, cot="worked"),
        generate("kinetic_energy", 10, seed=2, cot="steps"),
        odd,
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_round_trip_keeps_content(tmp_path: Path, fmt: str) -> None:
    for ps in _sets():
        path = tmp_path / f"{ps.name}.{fmt}"
        getattr(ps, f"to_{fmt}")(path)
        back = getattr(PromptSet, f"from_{fmt}")(path)
        assert back.name == ps.name
        assert back.prompts == ps.prompts
        assert back.content_hash() == ps.content_hash()
        assert back.label_names == ps.label_names
        # load_prompts picks the reader by extension, and honours n and set_name.
        first = load_prompts(path, n=2, set_name="renamed")
        assert first.name == "renamed"
        assert first.prompts == ps.prompts[:2]


def test_jsonl_layout_is_one_flat_object_per_line(tmp_path: Path) -> None:
    ps = generate("multiplication", 3, seed=0)
    path = tmp_path / "m.jsonl"
    ps.to_jsonl(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    rec = json.loads(lines[0])
    assert list(rec) == ["text", "x", "y", "value", "interaction", "operation", "template", "spans"]
    assert rec["spans"]["answer"] == list(ps[0].spans["answer"])


def test_csv_layout(tmp_path: Path) -> None:
    ps = generate("squaring", 2, seed=0)
    path = tmp_path / "s.csv"
    ps.to_csv(path)
    header, row = path.read_text(encoding="utf-8").splitlines()[:2]
    assert header == "text,x,value,interaction,operation,template,span:x,span:answer"
    s, e = ps[0].spans["answer"]
    assert row.endswith(f",{s}:{e}")


def test_hand_written_csv_with_bom_and_types(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_bytes(
        "\ufefftext,value,code,span:answer\n"
        "2 plus 2 is 4,4,007,12:13\n"
        "3 plus 3 is 6,6.5,x9,\n".encode()
    )
    ps = PromptSet.from_csv(path)
    assert ps.name == "mine"
    assert ps[0].labels == {"value": 4, "code": "007"}
    assert ps[1].labels["value"] == 6.5
    assert ps[0].span_text("answer") == "4"
    assert "answer" not in ps[1].spans
    assert ps.source == {"file": str(path), "format": "csv"}
