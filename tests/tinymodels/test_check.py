"""The in-memory probe check: residuals match transformers' hidden states, R² behaves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from actstore.tinymodels._check import answer_positions, probe_r2, residuals  # noqa: E402

TEXTS = ["7 times 8 equals 56", "The product of 12 and 3 is 36", "19 × 19 = 361", "4² = 16"]


def test_residuals_equal_hidden_states_and_last_block_is_before_the_norm(
    tiny_qwen2_dir: Path,
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pos = answer_positions(tiny_qwen2_dir, TEXTS)
    got = residuals(tiny_qwen2_dir, TEXTS, pos["before"], batch_size=3)  # padded batches
    assert got.shape == (4, 4, 64)
    tok = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir).eval()
    for i, text in enumerate(TEXTS):
        with torch.no_grad():
            hs = model(**tok(text, return_tensors="pt"), output_hidden_states=True).hidden_states
        p = pos["before"][i]
        for layer in range(3):
            np.testing.assert_allclose(got[i, layer], hs[layer + 1][0, p].numpy(), atol=1e-5)
        # hidden_states[-1] has the final norm applied; ours is the raw block output.
        assert not np.allclose(got[i, 3], hs[-1][0, p].numpy(), atol=1e-3)
        normed = model.model.norm(torch.from_numpy(got[i, 3])[None]).detach().numpy()[0]
        np.testing.assert_allclose(normed, hs[-1][0, p].numpy(), atol=1e-4)


def test_answer_positions_point_before_the_answer(tiny_qwen2_dir: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_qwen2_dir / "tokenizer.json"))
    pos = answer_positions(tiny_qwen2_dir, TEXTS)
    for text, before, last in zip(TEXTS, pos["before"], pos["last"]):
        enc = tok.encode(text)
        answer = text.rsplit(" ", 1)[1]
        assert last == len(enc.ids) - 1
        assert enc.offsets[before][1] <= len(text) - len(answer)
        assert enc.offsets[before + 1][0] == len(text) - len(answer)


def test_probe_r2_is_high_for_a_linear_target_and_zero_for_noise() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2, 8))
    signal = x[:, 0] @ rng.normal(size=8)
    r2 = probe_r2(x, signal)
    assert r2[0] > 0.99
    assert r2[1] < 0.1
    assert probe_r2(x, signal, shuffle_labels=True)[0] < 0.1
