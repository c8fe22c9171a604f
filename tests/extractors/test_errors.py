"""Every error of the extractor: a clear one-line message, the cache left as it was."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from actstore.errors import (
    DiskFullError,
    ExtractionError,
    InvalidArgumentError,
    ModelLoadError,
    ReadOnlyError,
)
from actstore.extractors import extract
from tests.extractors._helpers import copy_checkpoint, read_set

KW = dict(dtype="float32", device="cpu", progress=False)


def test_missing_model_dir(tmp_path, mixed_prompts):
    with pytest.raises(ModelLoadError, match="does not exist"):
        extract(model=tmp_path / "nope", prompts=mixed_prompts, out=tmp_path / "c.zarr", **KW)
    assert not (tmp_path / "c.zarr").exists()


def test_model_path_is_a_file(tmp_path, mixed_prompts):
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="got the file"):
        extract(model=f, prompts=mixed_prompts, out=tmp_path / "c.zarr", **KW)


def test_not_a_model_dir(tmp_path, mixed_prompts):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "readme.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        extract(model=tmp_path / "m", prompts=mixed_prompts, out=tmp_path / "c.zarr", **KW)


def test_weights_missing(tmp_path, tiny_qwen2_dir, mixed_prompts):
    m = copy_checkpoint(tiny_qwen2_dir, tmp_path / "m", skip=("model.safetensors",))
    with pytest.raises(ModelLoadError, match="weight files"):
        extract(model=m, prompts=mixed_prompts, out=tmp_path / "c.zarr", **KW)


def test_tokenizer_missing(tmp_path, tiny_qwen2_dir, mixed_prompts):
    m = copy_checkpoint(tiny_qwen2_dir, tmp_path / "m", skip=("tokenizer.json",))
    with pytest.raises(ModelLoadError, match="tokenizer"):
        extract(model=m, prompts=mixed_prompts, out=tmp_path / "c.zarr", **KW)
    assert not (tmp_path / "c.zarr").exists()


def test_corrupt_weights(tmp_path, tiny_qwen2_dir, mixed_prompts):
    m = copy_checkpoint(tiny_qwen2_dir, tmp_path / "m")
    (m / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="loadable"):
        extract(model=m, prompts=mixed_prompts, out=tmp_path / "c.zarr", **KW)
    assert not (tmp_path / "c.zarr").exists()


def test_layer_out_of_range_names_depth(tmp_path, tiny_qwen2_dir, mixed_prompts):
    with pytest.raises(InvalidArgumentError, match="4 decoder layers") as err:
        extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=tmp_path / "c.zarr",
                layers="1,4", **KW)  # fmt: skip
    assert "got 4" in str(err.value)
    with pytest.raises(InvalidArgumentError, match="got -5"):
        extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=tmp_path / "c.zarr",
                layers=[-5], **KW)  # fmt: skip


def test_prompt_longer_than_context(tmp_path, tiny_model_factory, mixed_prompts):
    m = tiny_model_factory("qwen2", max_position=16)
    with pytest.raises(ExtractionError, match="at most 16 tokens") as err:
        extract(model=m, prompts=mixed_prompts, out=tmp_path / "c.zarr", **KW)
    assert "for prompt" in str(err.value)
    assert not (tmp_path / "c.zarr").exists()


def test_nan_activations_name_prompt_and_layer(tmp_path, tiny_qwen2_dir, mixed_prompts):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_qwen2_dir), dtype=torch.float32)
    with torch.no_grad():
        model.model.layers[2].mlp.down_proj.weight[0, 0] = float("nan")
    m = copy_checkpoint(tiny_qwen2_dir, tmp_path / "m")
    model.save_pretrained(m)
    out = tmp_path / "c.zarr"
    with pytest.raises(ExtractionError, match=r"NaN or inf in prompt \d+ at layer 2"):
        extract(model=m, prompts=mixed_prompts, out=out, layers="all", block_size=8, **KW)
    from actstore.store import open_cache

    assert open_cache(out).missing_blocks("mixed") == [0, 1, 2]  # nothing written


def test_out_of_memory_advises_smaller_batches(
    tmp_path, tiny_qwen2_dir, mixed_prompts, monkeypatch
):
    import torch
    from transformers.models.qwen2 import modeling_qwen2

    forward = modeling_qwen2.Qwen2DecoderLayer.forward

    def oom(self, hidden_states, *args, **kwargs):
        if hidden_states.shape[0] * hidden_states.shape[1] > 2:  # the load-time probe fits
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return forward(self, hidden_states, *args, **kwargs)

    monkeypatch.setattr(modeling_qwen2.Qwen2DecoderLayer, "forward", oom)
    with pytest.raises(ExtractionError, match=r"smaller --max-batch-tokens, e\.g\. 256"):
        extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=tmp_path / "c.zarr",
                max_batch_tokens=512, **KW)  # fmt: skip


def test_disk_full_leaves_cache_resumable(tmp_path, tiny_qwen2_dir, mixed_prompts, monkeypatch):
    from zarr.storage import LocalStore

    kw = dict(layers="0,3", block_size=6, max_batch_tokens=64, **KW)
    ref = tmp_path / "ref.zarr"
    extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=ref, **kw)

    real_set = LocalStore.set
    calls: dict = {"n": 0, "first": None}

    def shard_written(key: str) -> None:
        calls["n"] += 1
        if calls["n"] >= 2:  # the second shard write finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        calls["first"] = int(key.split("/c/")[1].split("/")[0])  # blocks of a window: any order

    async def flaky_set(self, key, value):
        if key.startswith("mixed/resid_post/c/"):
            shard_written(key)
        return await real_set(self, key, value)

    from actstore.store.core import _chunkcodec

    real_file = _chunkcodec.write_file

    def flaky_file(root, key, pieces):  # the shard files actstore writes itself
        if key.startswith("mixed/resid_post/c/"):
            shard_written(key)
        return real_file(root, key, pieces)

    out = tmp_path / "c.zarr"
    monkeypatch.setattr(LocalStore, "set", flaky_set)
    monkeypatch.setattr(_chunkcodec, "write_file", flaky_file)
    with pytest.raises(DiskFullError, match="free space and re-run"):
        extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=out, **kw)
    monkeypatch.setattr(LocalStore, "set", real_set)
    monkeypatch.setattr(_chunkcodec, "write_file", real_file)
    from actstore.store import open_cache

    assert open_cache(out).missing_blocks("mixed") == sorted({0, 1, 2, 3} - {calls["first"]})
    rep = extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=out, **kw)
    assert rep.blocks_written == 3
    assert rep.complete
    np.testing.assert_array_equal(read_set(out, "mixed")["act"], read_set(ref, "mixed")["act"])


def test_unwritable_output(tmp_path, tiny_qwen2_dir, mixed_prompts):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    with pytest.raises(ReadOnlyError, match="is a file"):
        extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=blocker / "c.zarr", **KW)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shard": "2/2"}, "0 <= I < N"),
        ({"shard": "a/b"}, "--shard I/N"),
        ({"hooks": ("attn.hook_z",)}, "--backend tlens"),
        ({"backend": "jax"}, "backend one of"),
        ({"max_batch_tokens": 0}, "max-batch-tokens"),
        ({"dtype": "int8"}, "dtype auto"),
        ({"layers": "1;2"}, "comma-separated"),
        ({"bos": "maybe"}, "bos one of"),
    ],
)
def test_bad_arguments(kwargs, match, tmp_path, tiny_qwen2_dir, mixed_prompts):
    kw = {**KW, **kwargs}
    with pytest.raises(InvalidArgumentError, match=match):
        extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=tmp_path / "c.zarr", **kw)
    assert not (tmp_path / "c.zarr").exists()


def test_unknown_tlens_hook(tmp_path, tiny_qwen2_dir, mixed_prompts):
    with pytest.raises(InvalidArgumentError, match="TransformerLens per-block hook"):
        extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=tmp_path / "c.zarr",
                backend="tlens", hooks=("hook_nonsense",), **KW)  # fmt: skip


def test_cli_error_is_one_line_exit_2(tmp_path, capsys):
    from actstore.cli import main

    code = main(
        ["extract", "--model", str(tmp_path / "nope"), "--prompts", "multiplication", "--n", "4",
         "--out", str(tmp_path / "c.zarr")]
    )  # fmt: skip
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("actstore: error: expected a local model directory")
