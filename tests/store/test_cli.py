"""``actstore info``, ``copy`` and ``verify`` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from actstore.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "actstore", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_info_text_and_json(synthetic_cache, capsys) -> None:
    path, _ = synthetic_cache
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "arith: 23 prompts x 3 layers x 7 tokens x d_model 16, bfloat16" in out
    assert "5/5 complete" in out
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    s = info["prompt_sets"]["arith"]
    assert s["layers"] == [1, 4, 6]
    assert s["complete"] is True
    assert s["labels"] == ["template", "value", "x"]
    assert s["spans"] == ["answer", "operands"]
    hook = s["hooks"]["resid_post"]
    assert hook["bytes_uncompressed"] == 23 * 3 * 7 * 16 * 2
    assert hook["compression_ratio"] == round(hook["bytes_uncompressed"] / hook["bytes_on_disk"], 3)
    assert s["fingerprint"]["model"] == "sha256:abc"


def test_copy_then_verify_then_corrupt(synthetic_cache, tmp_path, capsys) -> None:
    path, _ = synthetic_cache
    dst = tmp_path / "sub.zip"
    assert main(["copy", str(path), str(dst), "--layers", "4,6", "--prompts", "0:10"]) == 0
    assert "arith: 10 prompts, layers [4, 6]" in capsys.readouterr().out
    assert main(["verify", str(dst)]) == 0
    assert "OK" in capsys.readouterr().out
    shard = path / "arith" / "resid_post" / "c" / "2" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0x10
    shard.write_bytes(bytes(data))
    assert main(["verify", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [p["key"] for p in report["problems"]] == ["arith/resid_post/c/2/0/0/0"]


def test_errors_are_one_line(tmp_path, capsys) -> None:
    proc = run_cli("info", tmp_path / "missing.zarr")  # the real entry point, in a subprocess
    assert proc.returncode == 2
    assert proc.stderr.startswith("actstore: error: expected a cache")
    assert "Traceback" not in proc.stderr
    argv = ["copy", str(tmp_path / "missing.zarr"), str(tmp_path / "x.zarr"), "--prompts", "a:b"]
    assert main(argv) == 2
    assert "START:STOP" in capsys.readouterr().err
    assert main(["info", str(tmp_path), "--storage-options", "{bad"]) == 2
    err = capsys.readouterr().err
    assert "JSON object" in err
    assert err.count("\n") == 1


def test_help_has_examples() -> None:
    proc = run_cli("copy", "--help")
    assert "actstore copy cache.zarr small.zarr --layers" in proc.stdout
