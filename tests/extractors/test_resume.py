"""Exactly once and resumable: re-runs, SIGKILL + resume, concurrent --shard workers, refusals."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from actstore.errors import FingerprintMismatchError
from actstore.extractors import extract
from tests.extractors._helpers import mixed_prompt_set, read_set

KW = dict(layers="0,2,3", dtype="float32", device="cpu", max_batch_tokens=48, block_size=4)


def _files(out: Path) -> dict[str, bytes]:
    """Every file of the activation array (shards and metadata), for a bit-level comparison."""
    root = out / "mixed" / "resid_post"
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _cli(model: Path, prompts: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "actstore", "extract", "--model", str(model), "--prompts",
        str(prompts), "--out", str(out), "--layers", "0,2,3", "--dtype", "float32", "--device",
        "cpu", "--max-batch-tokens", "48", "--block-size", "4", "--progress", "none",
        "--set-name", "mixed", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def prompts_file(tmp_path, mixed_prompts) -> Path:
    path = tmp_path / "mixed.jsonl"
    mixed_prompts.to_jsonl(path)
    return path


def test_rerun_of_finished_job_does_nothing(tiny_qwen2_dir, mixed_prompts, tmp_path):
    out = tmp_path / "c.zarr"
    first = extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=out, progress=False, **KW)
    before = _files(out)
    again = extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=out, progress=False, **KW)
    assert first.blocks_written == 6
    assert again.status == "already-complete"
    assert again.blocks_written == 0
    assert "nothing to do" in again.message
    assert _files(out) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"layers": "0,2"}, "layers"),
        ({"dtype": "bfloat16"}, "dtype"),
        ({"hooks": ("resid_pre",)}, "hooks"),
        ({"model": "other"}, "fingerprint.model"),
    ],
)
def test_changed_job_is_refused_naming_the_difference(
    change, field, tiny_qwen2_dir, tiny_model_factory, mixed_prompts, tmp_path
):
    out = tmp_path / "c.zarr"
    extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=out, progress=False, **KW)
    before = _files(out)
    kw = {**KW, **change}
    # "other": same architecture and tokenizer, other random weights
    kw["model"] = tiny_model_factory("qwen2", seed=1) if "model" in change else tiny_qwen2_dir
    with pytest.raises(FingerprintMismatchError, match=field.replace(".", r"\.")):
        extract(prompts=mixed_prompts, out=out, progress=False, **kw)
    assert _files(out) == before


def test_changed_prompts_are_refused(tiny_qwen2_dir, mixed_prompts, tmp_path):
    out = tmp_path / "c.zarr"
    extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=out, progress=False, **KW)
    other = mixed_prompt_set(seed=1)
    with pytest.raises(FingerprintMismatchError, match=r"prompts|n_tokens"):
        extract(model=tiny_qwen2_dir, prompts=other, out=out, progress=False, **KW)


def test_shards_in_sequence_equal_single_process(tiny_qwen2_dir, mixed_prompts, tmp_path):
    single, sharded = tmp_path / "single.zarr", tmp_path / "sharded.zarr"
    extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=single, progress=False, **KW)
    reports = [
        extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=sharded, shard=f"{i}/3",
                progress=False, **KW)
        for i in (2, 0, 1)
    ]  # fmt: skip
    assert [r.blocks_written for r in reports] == [2, 2, 2]
    assert [r.complete for r in reports] == [False, False, True]
    assert _files(single) == _files(sharded)
    again = extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=sharded, shard="1/3",
                    progress=False, **KW)  # fmt: skip
    assert again.status == "already-complete"


@pytest.mark.slow  # two interpreters loading torch; tests/reliability/test_concurrency.py runs four
def test_concurrent_shard_workers_equal_single_process(
    tiny_qwen2_dir, mixed_prompts, prompts_file, tmp_path
):
    single, sharded = tmp_path / "single.zarr", tmp_path / "sharded.zarr"
    extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=single, progress=False, **KW)
    procs = [
        subprocess.Popen(
            _cli(tiny_qwen2_dir, prompts_file, sharded, "--shard", f"{i}/2"),
            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    assert _files(single) == _files(sharded)
    assert np.array_equal(
        read_set(single, "mixed")["token_id"], read_set(sharded, "mixed")["token_id"]
    )


@pytest.fixture
def long_prompts(tmp_path):
    """64 prompts: 16 blocks of 4, so a kill can land between, or inside, any block write."""
    prompts = mixed_prompt_set(n=64, seed=3)
    path = tmp_path / "long.jsonl"
    prompts.to_jsonl(path)
    return type(prompts).from_jsonl(path), path


def _kill_midway(model: Path, prompts_file: Path, out: Path, rng: random.Random) -> int:
    """Start the CLI, SIGKILL it after a random number of shard files (+ jitter); blocks left."""
    from actstore.store import open_cache

    target = rng.randint(1, 12)
    proc = subprocess.Popen(
        _cli(model, prompts_file, out), env=_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    shards = out / "mixed" / "resid_post" / "c"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if shards.exists() and sum(1 for p in shards.rglob("*") if p.is_file()) >= target:
            break
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.02))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(open_cache(out).missing_blocks("mixed"))


def test_sigkill_then_resume_is_bit_identical(tiny_qwen2_dir, long_prompts, tmp_path):
    prompts, path = long_prompts
    ref, out = tmp_path / "ref.zarr", tmp_path / "killed.zarr"
    extract(model=tiny_qwen2_dir, prompts=prompts, out=ref, set_name="mixed", progress=False, **KW)
    left = _kill_midway(tiny_qwen2_dir, path, out, random.Random(0))
    assert 0 < left < 16, "the kill must land mid-run for this test to mean anything"
    rep = extract(
        model=tiny_qwen2_dir, prompts=prompts, out=out, set_name="mixed", progress=False, **KW
    )
    assert rep.blocks_written == left
    assert rep.complete
    assert _files(ref) == _files(out)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 5))
def test_sigkill_at_random_points_then_resume(seed, tiny_qwen2_dir, long_prompts, tmp_path):
    prompts, path = long_prompts
    ref, out = tmp_path / "ref.zarr", tmp_path / "killed.zarr"
    extract(model=tiny_qwen2_dir, prompts=prompts, out=ref, set_name="mixed", progress=False, **KW)
    rng = random.Random(seed)
    for _ in range(2):  # killed twice: the second run resumes, then is killed too
        _kill_midway(tiny_qwen2_dir, path, out, rng)
    rep = extract(
        model=tiny_qwen2_dir, prompts=prompts, out=out, set_name="mixed", progress=False, **KW
    )
    assert rep.complete
    assert _files(ref) == _files(out)
