"""CUDA path (pinned-memory copies on a side stream): skipped without a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from actstore.extractors import extract
from tests.extractors._helpers import load_reference_model, read_set, reference_resid_post

pytestmark = pytest.mark.gpu


def test_cuda_bfloat16_bit_identical_to_model_output(tiny_qwen2_dir, mixed_prompts, tmp_path):
    out = tmp_path / "c.zarr"
    rep = extract(model=tiny_qwen2_dir, prompts=mixed_prompts, out=out, layers="all",
                  device="cuda", max_batch_tokens=1, block_size=5, progress=False)  # fmt: skip
    assert rep.plan.dtype == "bfloat16"  # auto on GPU
    got = read_set(out, "mixed")
    model = load_reference_model(tiny_qwen2_dir, "bfloat16").to("cuda")
    for i in range(len(mixed_prompts)):
        n = int(got["n_tokens"][i])
        ref = reference_resid_post(model, got["token_id"][i, :n].tolist(), range(4))
        np.testing.assert_array_equal(got["act"][i, :, :n].view(np.uint16), ref.view(np.uint16))


def test_cuda_float32_matches_cpu_reference(tiny_llama_dir, mixed_prompts, tmp_path):
    out = tmp_path / "c.zarr"
    extract(model=tiny_llama_dir, prompts=mixed_prompts, out=out, layers="all", dtype="float32",
            device="cuda", max_batch_tokens=64, block_size=6, progress=False)  # fmt: skip
    got = read_set(out, "mixed")
    model = load_reference_model(tiny_llama_dir)
    for i in range(len(mixed_prompts)):
        n = int(got["n_tokens"][i])
        ref = reference_resid_post(model, got["token_id"][i, :n].tolist(), range(4))
        np.testing.assert_allclose(got["act"][i, :, :n], ref, atol=1e-4, rtol=1e-4)
