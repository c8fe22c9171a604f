"""Torn and corrupt data: verify names it, open and analysis refuse it, repair rewrites only it.

One real extraction (8 shards) per module; each test damages a copy: a truncated shard, a shard
cut to zero bytes, a flipped byte, a deleted shard, a damaged ``zarr.json``, a damaged completion
marker, a damaged per-prompt metadata chunk.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import actstore
from actstore.cli import main as cli_main
from actstore.errors import CorruptCacheError
from tests.reliability._harness import SET, cache_files, diff, make_job

SHARD = f"{SET}/resid_post/c/{{}}/0/0/0"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x5A
    path.write_bytes(bytes(data))


def _delete(path: Path) -> None:
    path.unlink()


def _garble(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])  # cut mid-JSON


#: name -> (object key, damage): the key is what verify/open/analysis must name.
DAMAGE = {
    "truncated-shard": (SHARD.format(2), _truncate),
    "emptied-shard": (SHARD.format(6), _empty),
    "flipped-byte": (SHARD.format(5), _flip),
    "deleted-shard": (SHARD.format(4), _delete),
    "damaged-zarr-json": (f"{SET}/resid_post/zarr.json", _garble),
}


@pytest.fixture(scope="module")
def clean(tiny_qwen2_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corrupt")
    job = make_job(tiny_qwen2_dir, tmp)
    out = tmp / "cache.zarr"
    assert job.extract(out).complete
    return job, out


@pytest.fixture
def damaged(clean, tmp_path):
    """``damage(name, ...)`` -> a damaged copy of the clean cache (same path for every copy)."""
    job, src = clean
    out = src.parent / "work.zarr"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(src, out)  # copy2: mtimes kept, so "untouched" can be checked
    yield job, src, out
    shutil.rmtree(out, ignore_errors=True)


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_verify_names_each_damaged_object(case, damaged, capsys):
    _, _, out = damaged
    key, damage = DAMAGE[case]
    damage(out / key)
    assert cli_main(["verify", str(out)]) == 1
    text = capsys.readouterr().out
    assert key in text, text
    assert text.count("\n") == 2, "exactly one problem named (and the summary line)"


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_open_and_fit_probes_fail_naming_the_damage(case, damaged):
    from actstore.analysis import fit_probes

    _, _, out = damaged
    key, damage = DAMAGE[case]
    damage(out / key)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete cache opens without warnings
        ds = actstore.open(out, group=SET) if case in ("truncated-shard", "flipped-byte") else None
    if ds is not None:  # open is lazy; the read of the damaged chunk fails
        with pytest.raises(CorruptCacheError, match=f"{SET}/resid_post") as info:
            ds["resid_post"].values
        assert key in str(info.value)
        assert ds["resid_post"].isel(prompt=slice(0, 6)).values.any()  # intact blocks still read
    else:  # deleted, emptied or unreadable metadata: open itself refuses
        with pytest.raises(CorruptCacheError, match="actstore verify") as info:
            actstore.open(out, group=SET)
        assert key in str(info.value)
    with pytest.raises(CorruptCacheError, match=f"{SET}/resid_post"):
        fit_probes(out, prompt_set=SET, target="value", layers=[2], cv=3)


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for p in root.rglob("*")
        if p.is_file()
    }


def test_repair_from_extraction_rewrites_exactly_the_damaged_shards(damaged, capsys):
    job, src, out = damaged
    for case in ("truncated-shard", "emptied-shard", "flipped-byte", "deleted-shard"):
        key, damage = DAMAGE[case]
        damage(out / key)
    _flip(out / SET / "_blocks_done" / "c" / "7")  # a damaged completion marker too
    blocks = [2, 4, 5, 6, 7]
    before = _snapshot(out)
    argv = ["repair", str(out), "--from-extraction", "--model", str(job.model), "--prompts",
            str(job.prompts), "--device", "cpu"]  # fmt: skip
    assert cli_main(argv) == 0
    text = capsys.readouterr().out
    assert f"unrecord 5 damaged block(s) {blocks}" in text, text
    assert "wrote 5 blocks" in text, text
    after = _snapshot(out)
    assert diff(cache_files(src), cache_files(out)) == []  # bit-identical to the clean cache
    rewritten = {k for k in after if k not in before or after[k] != before[k]}
    # exactly the damaged blocks' shards and markers; every other file keeps its bytes and mtime
    assert rewritten == {SHARD.format(b) for b in blocks} | {
        f"{SET}/_blocks_done/c/{b}" for b in blocks
    }
    assert cli_main(["verify", str(out)]) == 0


def test_repair_then_resume_rewrites_damaged_zarr_json_and_shard(damaged, capsys):
    job, src, out = damaged
    for case in ("damaged-zarr-json", "flipped-byte"):
        key, damage = DAMAGE[case]
        damage(out / key)
    assert cli_main(["repair", str(out), "--dry-run"]) == 0
    assert "would rewrite metadata" in capsys.readouterr().out
    assert cli_main(["repair", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"rewrite metadata {SET}/resid_post/zarr.json" in text
    assert "unrecord 1 damaged block(s) [5]" in text
    with pytest.warns(actstore.errors.IncompleteCacheWarning, match="1 of 8 blocks missing"):
        actstore.open(out, group=SET)
    report = job.extract(out)  # the ordinary resume path
    assert report.blocks_written == 1
    assert diff(cache_files(src), cache_files(out)) == []


def test_unrepairable_damage_is_reported_with_exit_1(damaged, capsys):
    _, _, out = damaged
    _flip(out / SET / "n_tokens" / "c" / "0")
    assert cli_main(["repair", str(out)]) == 1
    text = capsys.readouterr().out
    assert f"cannot repair corrupt: {SET}/n_tokens/c/0" in text
    with pytest.raises(CorruptCacheError, match=f"{SET}/n_tokens"):
        np.asarray(actstore.open(out, group=SET)["n_tokens"].values)
