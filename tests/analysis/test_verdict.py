"""The per-layer verdict: p-values decide when present; else the ordering against both controls."""

from __future__ import annotations

import math

import pytest

from actstore.analysis._report import DETECTION_COLUMNS, detection_table
from actstore.analysis._verdict import VERDICTS, layer_verdict


def _row(probe: float, shuffled: float, random: float, **extra) -> dict:
    return {
        "layer": 3,
        "probe_mean_min_error": probe,
        "shuffled_probe_mean_min_error": shuffled,
        "random_target_mean_min_error": random,
        **extra,
    }


def test_shuffled_probe_closer_is_not_a_detection() -> None:
    # The case: trained model, before:answer, layer 1.
    key, sentence = layer_verdict(_row(3.45, 1.21, 3.58))
    assert key == "not_detected"
    assert "shuffled-label probe (1.21)" in sentence and "3.45" in sentence
    assert "random target" not in sentence  # only the control that came closer is named


def test_random_target_as_close_is_not_a_detection() -> None:
    key, sentence = layer_verdict(_row(4.0, 9.0, 4.0))
    assert key == "not_detected" and "random target (4)" in sentence


def test_below_both_controls_without_a_test_claims_nothing() -> None:
    key, sentence = layer_verdict(_row(1.0, 5.0, 4.0))
    assert key == "untested"
    assert "no significance test" in sentence and "chance is not excluded" in sentence


@pytest.mark.parametrize(("p", "key"), [(0.003, "detected"), (0.2, "not_detected")])
def test_p_value_decides_when_present(p: float, key: str) -> None:
    # Even with the shuffled probe closer, the permutation test is what decides.
    row = _row(3.0, 1.0, 5.0, p_value=p, n_permutations=100)
    got, sentence = layer_verdict(row)
    assert got == key and f"p = {p:.3g}" in sentence and "100 permutations" in sentence


def test_adjusted_p_value_is_preferred_and_named() -> None:
    row = _row(1.0, 5.0, 4.0, p_value=0.01, p_value_corrected=0.08, p_correction="holm")
    key, sentence = layer_verdict(row)
    assert key == "not_detected" and "p = 0.08, holm over layers" in sentence


def test_missing_numbers() -> None:
    assert layer_verdict({"layer": 1})[0] == "unknown"
    key, sentence = layer_verdict(_row(2.0, math.nan, math.nan))
    assert key == "unknown" and "no control" in sentence
    # Only the random target known (probes saved without a control): it alone is compared.
    assert layer_verdict(_row(2.0, math.nan, 1.0))[0] == "not_detected"


def test_detection_table_keeps_controls_and_adds_the_verdict() -> None:
    rows = [_row(3.45, 1.21, 3.58), {**_row(1.0, 5.0, 4.0), "layer": 5, "p_value": 0.001}]
    table, sentences = detection_table(rows)
    assert [r["verdict"] for r in table] == [VERDICTS["not_detected"], VERDICTS["detected"]]
    cols = list(table[0])
    assert cols[:5] == [c for c in DETECTION_COLUMNS if c in cols[:5]]
    assert "shuffled_probe_mean_min_error" in cols and "p_value" in cols
    assert "p_value_corrected" not in cols  # only columns some row has
    assert table[0]["p_value"] == ""  # a layer without one shows a blank
    assert len(sentences) == 2 and sentences[1].startswith("Layer 5: detection beats chance")
