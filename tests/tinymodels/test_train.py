"""Training the demo model: loss goes down, reproducible, twin = untrained start, cached builds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from actstore.errors import InvalidArgumentError, ModelLoadError  # noqa: E402
from actstore.tinymodels import (  # noqa: E402
    build_random_model,
    build_random_twin,
    get_demo_model,
    train_tiny_model,
)

from . import _textgen  # noqa: E402

SMALL = {"n_layers": 2, "d_model": 32, "n_heads": 2, "batch_size": 16, "eval_every": 20}


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return _textgen.corpus(400, seed=3)


def test_training_reduces_loss_and_is_reproducible(tmp_path: Path, texts: list[str]) -> None:
    a = train_tiny_model(tmp_path / "a", texts=texts, steps=60, **SMALL)
    b = train_tiny_model(tmp_path / "b", texts=texts, steps=60, **SMALL)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    log = json.loads((a / "training_log.json").read_text())
    assert log["step"][-1] == 60
    assert len(log["train_loss"]) == 6
    first, last = log["eval"][0], log["eval"][-1]
    assert (first["step"], last["step"]) == (0, 60)
    # Uniform guessing over ~400 tokens is ln(400) ~ 6; a trained model is far below.
    assert first["loss"] > 5
    assert last["loss"] < 0.6 * first["loss"]
    assert log["train_loss"][-1] < 0.6 * log["train_loss"][0]
    record = json.loads((a / "tinymodel.json").read_text())
    assert (record["kind"], record["steps"], record["seed"]) == ("trained", 60, 0)
    assert record["data"] is None  # the given texts, not the generators, were used
    assert record["texts_sha256"] == log["texts_sha256"]


def test_other_seed_gives_other_weights(tmp_path: Path, texts: list[str]) -> None:
    a = train_tiny_model(tmp_path / "a", texts=texts, steps=5, seed=0, **SMALL)
    b = train_tiny_model(tmp_path / "b", texts=texts, steps=5, seed=1, **SMALL)
    assert (a / "model.safetensors").read_bytes() != (b / "model.safetensors").read_bytes()


def test_twin_is_the_untrained_start(tmp_path: Path, texts: list[str]) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    trained = train_tiny_model(tmp_path / "trained", texts=texts, steps=10, **SMALL)
    start = train_tiny_model(tmp_path / "start", texts=texts, steps=0, **SMALL)
    twin = build_random_twin(tmp_path / "twin", like=trained)
    assert (twin / "model.safetensors").read_bytes() == (start / "model.safetensors").read_bytes()
    assert (twin / "config.json").read_text() == (trained / "config.json").read_text()
    assert (twin / "tokenizer.json").read_bytes() == (trained / "tokenizer.json").read_bytes()
    w_twin, w_trained = (
        load_file(twin / "model.safetensors"),
        load_file(trained / "model.safetensors"),
    )
    assert all(not torch.equal(w_twin[k], w_trained[k]) for k in w_twin)
    model = AutoModelForCausalLM.from_pretrained(twin)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert json.loads((twin / "tinymodel.json").read_text())["kind"] == "random_twin"


def test_get_demo_model_trains_once_and_reuses(tmp_path: Path, texts: list[str]) -> None:
    kw = {"texts": texts, "steps": 3, **SMALL}
    path = get_demo_model(tmp_path, **kw)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert get_demo_model(tmp_path, **kw) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    # Any argument or text change is another model.
    assert get_demo_model(tmp_path, **{**kw, "steps": 4}) != path
    assert get_demo_model(tmp_path, **{**kw, "texts": texts[:-1]}) != path
    twin = get_demo_model(tmp_path, random_twin=True, **kw)
    assert twin == path.with_name(path.name + "-twin")
    assert json.loads((twin / "tinymodel.json").read_text())["twin_of"] == str(path.resolve())
    # A build killed before its marker was written is not trusted: it is rebuilt.
    os.remove(path / "tinymodel.json")
    (path / "model.safetensors").write_bytes(b"truncated")
    assert get_demo_model(tmp_path, **kw) == path
    assert (path / "tinymodel.json").is_file()
    assert (path / "model.safetensors").stat().st_size > 1000


def test_bad_input_raises_clear_errors(tmp_path: Path, texts: list[str]) -> None:
    with pytest.raises(InvalidArgumentError, match="at least 20"):
        train_tiny_model(tmp_path / "a", texts=texts[:5], **SMALL)
    with pytest.raises(InvalidArgumentError, match="max_position"):
        train_tiny_model(tmp_path / "b", texts=texts, max_position=16, **SMALL)
    with pytest.raises(InvalidArgumentError, match="unknown"):
        get_demo_model(tmp_path, step=3)
    random_dir = build_random_model(tmp_path / "r", n_layers=1, d_model=16, n_heads=2)
    with pytest.raises(InvalidArgumentError, match="train_tiny_model"):
        build_random_twin(tmp_path / "t", like=random_dir)
    with pytest.raises(ModelLoadError, match=r"tinymodel\.json"):
        build_random_twin(tmp_path / "t", like=tmp_path / "nothing")
