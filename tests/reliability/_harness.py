"""Shared pieces of the fault tests: one small extraction job, run killed or whole, and compared.

The job: a tiny random Qwen2 (tests/_fixtures/models.py), 24 prompts of very different lengths,
layers 0, 2, 3, float32 on CPU, 3 prompts per block: 8 blocks (shards), several forward passes each.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SET = "mixed"
N_PROMPTS = 24
BLOCK = 3
N_BLOCKS = N_PROMPTS // BLOCK


@dataclass(frozen=True)
class Job:
    model: Path
    prompts: Path

    def argv(self, out: Path, *extra: str) -> list[str]:
        """``actstore`` arguments of the job (without the program name)."""
        return [
            "extract", "--model", str(self.model), "--prompts", str(self.prompts), "--out",
            str(out), "--set-name", SET, "--layers", "0,2,3", "--dtype", "float32", "--device",
            "cpu", "--max-batch-tokens", "40", "--block-size", str(BLOCK), "--progress", "none",
            *extra,
        ]  # fmt: skip

    def command(self, out: Path, *extra: str) -> str:
        """The command string the CLI records in the provenance."""
        return "actstore " + " ".join(shlex.quote(a) for a in self.argv(out, *extra))

    def extract(self, out: Path, **kwargs: Any) -> Any:
        """The same job in this process, recording the same command as the CLI would."""
        from actstore.extractors import extract

        shard = kwargs.pop("shard", None)
        extra = ("--shard", shard) if shard else ()
        return extract(
            model=self.model, prompts=str(self.prompts), out=out, set_name=SET, layers="0,2,3",
            hooks="resid_post", dtype="float32", device="cpu", max_batch_tokens=40,
            block_size=BLOCK, progress=False, shard=shard, command=self.command(out, *extra),
            **kwargs,
        )  # fmt: skip


def make_job(model: Path, tmp: Path) -> Job:
    from tests.extractors._helpers import mixed_prompt_set

    path = tmp / "prompts.jsonl"
    mixed_prompt_set(n=N_PROMPTS, seed=3, name=SET).to_jsonl(path)
    return Job(model=model, prompts=path)


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), out.get("PYTHONPATH", "")])
    out.update(extra)
    return out


def run_cli(argv: list[str], *, fault: dict[str, str] | None = None, timeout: float = 300):
    """Run ``actstore ARGV`` in a fresh interpreter (through the fault hook when *fault* is set)."""
    module = ["-m", "tests.reliability._killhook"] if fault is not None else ["-m", "actstore"]
    return subprocess.run(
        [sys.executable, *module, *argv],
        cwd=REPO,
        env=env(**(fault or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cache_files(root: Path, *, ignore_command: bool = False) -> dict[str, bytes]:
    """Every file of a cache, bit for bit, except the root's creation time (a wall-clock stamp).

    ``ignore_command`` also drops the recorded command line from the prompt set's provenance
    (``--shard I/N`` workers record their own) and the consolidated copies of the metadata,
    which repeat it.
    """
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        data = p.read_bytes()
        if rel == "zarr.json":
            meta = json.loads(data)
            meta.get("attributes", {}).get("actstore", {}).pop("created", None)
            data = json.dumps(meta, sort_keys=True).encode()
        if ignore_command and rel == f"{SET}/zarr.json":
            meta = json.loads(data)
            meta["attributes"]["actstore"]["spec"]["provenance"].pop("command")
            data = json.dumps(meta, sort_keys=True).encode()
        if ignore_command and rel.endswith("zarr.json"):
            # the consolidated copy repeats (and digests) the documents compared here one by one,
            # the command lines included
            meta = json.loads(data)
            meta.pop("consolidated_metadata", None)
            data = json.dumps(meta, sort_keys=True).encode()
        out[rel] = data
    return out


def diff(a: dict[str, bytes], b: dict[str, bytes]) -> list[str]:
    """Keys that differ between two :func:`cache_files` results (for readable failures)."""
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
