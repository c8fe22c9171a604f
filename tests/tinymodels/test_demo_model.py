"""The demo model itself (default recipe on the prompt generators' text): slow, ~1.5-3 min CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from actstore.prompts import generate
from actstore.tinymodels import get_demo_model
from actstore.tinymodels._check import answer_positions, probe_r2, residuals

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("demo_models")
    return get_demo_model(root), get_demo_model(root, random_twin=True)


def test_default_training_learns_the_arithmetic(demo: tuple[Path, Path]) -> None:
    log = json.loads((demo[0] / "training_log.json").read_text())
    start, end = log["eval"][0], log["eval"][-1]
    assert end["loss"] < 0.15 * start["loss"]
    # Held-out answers (the number after "equals", "is", "=", ...) become predictable.
    assert end["answer_loss"] < 0.1 * start["answer_loss"]
    assert end["answer_accuracy"] > 0.6
    assert start["answer_accuracy"] < 0.05


def test_probes_find_the_product_in_the_trained_model_not_in_its_twin(
    demo: tuple[Path, Path],
) -> None:
    trained, twin = demo
    ps = generate("multiplication", 600, seed=99)
    texts = [p.text for p in ps.prompts]
    x, y = ps.label_array("x"), ps.label_array("y")
    # The part of x*y that is not linear in x and y: a random network encodes x and y linearly
    # well enough to reach R² ~0.8 on the product itself, but not this.
    interaction = (x - x.mean()) * (y - y.mean())
    before = answer_positions(trained, texts)["before"]
    r2_trained = probe_r2(residuals(trained, texts, before), interaction)
    r2_twin = probe_r2(residuals(twin, texts, before), interaction)
    assert r2_trained[-1] > r2_twin[-1] + 0.2
    assert np.max(r2_trained) > 0.4
