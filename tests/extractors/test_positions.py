"""``extract(positions=...)`` / ``--positions``: materialised once the set is complete, not before.

References: the full activation array of the same cache (rows at the stored token index, bit for
bit), and a clean uninterrupted run (the positions group's files, byte for byte).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from actstore.errors import InvalidArgumentError, UnknownNameError
from actstore.extractors import extract
from actstore.store import open_cache, stored_positions
from tests.extractors._helpers import mixed_prompt_set
from tests.extractors.test_resume import KW, _cli, _env

POS = "last,before:answer"


def _files(out: Path) -> dict[str, bytes]:
    root = out / "mixed" / "positions"
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_extract_materialises_the_rows_of_the_full_array(tiny_qwen2_dir, tmp_path):
    prompts = mixed_prompt_set(n=10)
    out = tmp_path / "c.zarr"
    rep = extract(
        model=tiny_qwen2_dir, prompts=prompts, out=out, progress=False, positions=POS, **KW
    )
    assert rep.complete and "positions last, before:answer materialised" in rep.message
    cache = open_cache(out)
    stored = stored_positions(cache, "mixed")
    assert stored is not None and stored["positions"] == ["last", "before:answer"]
    group = cache.group("mixed")
    full = group["resid_post"][...]
    n_tokens = group["n_tokens"][...]
    index = stored["group"]["token_index"][...]
    rows = stored["group"]["resid_post"][...]
    np.testing.assert_array_equal(index[:, 0], n_tokens - 1)
    # the answer is the last word: the token before it is the one before its first token
    answer = group["span_mask"][:, 0, :]
    np.testing.assert_array_equal(index[:, 1], answer.argmax(axis=1) - 1)
    for j in range(2):
        expect = full[np.arange(10), :, index[:, j], :]
        assert expect.tobytes() == rows[:, :, j, :].tobytes()
    again = extract(
        model=tiny_qwen2_dir, prompts=prompts, out=out, progress=False, positions="last", **KW
    )
    assert again.status == "already-complete" and "materialised" not in again.message


def test_killed_extraction_has_no_positions_until_resumed(tiny_qwen2_dir, tmp_path):
    prompts = mixed_prompt_set(n=32, seed=3)
    path = tmp_path / "p.jsonl"
    prompts.to_jsonl(path)
    ref, out = tmp_path / "ref.zarr", tmp_path / "killed.zarr"
    extract(
        model=tiny_qwen2_dir, prompts=prompts, out=ref, set_name="mixed", progress=False,
        positions=POS, **KW,
    )  # fmt: skip
    proc = subprocess.Popen(
        _cli(tiny_qwen2_dir, path, out, "--positions", POS), env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    shards = out / "mixed" / "resid_post" / "c"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if shards.exists() and sum(1 for p in shards.rglob("*") if p.is_file()) >= 3:
            break
        time.sleep(0.002)
    time.sleep(random.Random(0).uniform(0, 0.01))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cache = open_cache(out)
    assert cache.missing_blocks("mixed"), "the kill must land mid-run for this test to mean it"
    assert stored_positions(cache, "mixed") is None
    assert not (out / "mixed" / "positions").exists()
    rep = extract(
        model=tiny_qwen2_dir, prompts=prompts, out=out, set_name="mixed", progress=False,
        positions=POS, **KW,
    )  # fmt: skip
    assert rep.complete and "materialised" in rep.message
    assert _files(ref) == _files(out)


@pytest.mark.parametrize(
    ("positions", "error", "match"),
    [
        ("before:nope", UnknownNameError, "expected a span of the prompts \\(answer\\)"),
        ("all", InvalidArgumentError, "one token per prompt"),
        ("last,middle", InvalidArgumentError, "expected a position spec"),
    ],
)
def test_bad_positions_are_refused_before_anything_is_written(
    tiny_qwen2_dir, tmp_path, positions, error, match
):
    out = tmp_path / "c.zarr"
    with pytest.raises(error, match=match):
        extract(
            model=tiny_qwen2_dir, prompts=mixed_prompt_set(n=4), out=out, progress=False,
            positions=positions, **KW,
        )  # fmt: skip
    assert not out.exists()


def test_config_positions_parse_and_enter_the_hash_only_when_set():
    from actstore.experiment import parse_config
    from actstore.experiment._config import config_hash

    base = {
        "name": "study",
        "prompt_sets": [{"name": "arith", "sources": [{"generator": "multiplication", "n": 8}]}],
    }
    plain = parse_config(base)
    with_pos = parse_config({**base, "extract": {"positions": ["last", "before:answer"]}})
    assert with_pos.extract.positions == ("last", "before:answer")
    assert "positions" not in plain.to_dict()["extract"]
    assert with_pos.to_dict()["extract"]["positions"] == ["last", "before:answer"]
    assert config_hash(plain.extract) != config_hash(with_pos.extract)
    # the hash of a config without positions is the hash of its fields as before the key existed
    import dataclasses
    import hashlib
    import json

    # keys added later and unset (positions, codec) stay out of the hash
    fields = {
        f.name: getattr(plain.extract, f.name)
        for f in dataclasses.fields(plain.extract)
        if not f.metadata.get("omit_default")
    }
    assert "positions" not in fields
    blob = json.dumps([json.loads(json.dumps(fields, default=list))], sort_keys=True)
    assert config_hash(plain.extract) == hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_position_selecting_no_token_anywhere_is_refused_before_the_model_runs(
    tiny_qwen2_dir, tmp_path
):
    """breaker11: ``before:x`` with span x at character 0 in every prompt selects no token; this
    used to be refused only after the whole extraction (exit 2 on a complete set)."""
    from actstore.prompts import Prompt, PromptSet

    prompts = PromptSet(
        name="x0",
        prompts=[
            Prompt(text=f"{a} times 3 equals {3 * a}", labels={"v": 3 * a}, spans={"x": (0, 1)})
            for a in range(2, 7)
        ],
    )
    out = tmp_path / "c.zarr"
    with pytest.raises(InvalidArgumentError, match="'before:x' to select a token in some prompt"):
        extract(
            model=tiny_qwen2_dir, prompts=prompts, out=out, progress=False,
            positions="last,before:x", **KW,
        )  # fmt: skip
    assert not out.exists()
    # the same prompts without that position extract and materialise `last`
    rep = extract(
        model=tiny_qwen2_dir, prompts=prompts, out=out, progress=False, positions="last", **KW
    )
    assert rep.complete and "materialised" in rep.message


def test_repair_says_it_drops_positions_and_from_extraction_derives_them_again(
    tiny_qwen2_dir, tmp_path, capsys
):
    """A damaged block takes the (derived) positions group with it: repair names that in its
    text (also as a dry run), and ``--from-extraction`` writes the group again, byte for byte."""
    from actstore.cli import main

    prompts_path = tmp_path / "p.jsonl"
    mixed_prompt_set(n=10).to_jsonl(prompts_path)
    out = tmp_path / "c.zarr"
    extract(model=tiny_qwen2_dir, prompts=prompts_path, out=out, set_name="mixed",
            progress=False, positions=POS, **KW)  # fmt: skip
    before = _files(out)
    shard = sorted(p for p in (out / "mixed" / "resid_post" / "c").rglob("*") if p.is_file())[0]
    shard.write_bytes(shard.read_bytes()[:10])

    assert main(["repair", str(out), "--dry-run"]) == 0
    assert "mixed: would delete the materialised positions" in capsys.readouterr().out
    assert _files(out) == before  # a dry run deletes nothing

    args = ["repair", str(out), "--from-extraction", "--model", str(tiny_qwen2_dir)]
    assert main([*args, "--prompts", str(prompts_path), "--set-name", "mixed"]) == 0
    text = capsys.readouterr().out
    assert "mixed: delete the materialised positions" in text
    assert "mixed: materialised positions last, before:answer again" in text
    assert _files(out) == before
