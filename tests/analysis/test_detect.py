"""Detection: planted signal recovered, controls at chance, padding excluded, written back."""

from __future__ import annotations

import numpy as np
import pytest

import actstore
from actstore.analysis import detect, fit_probes
from actstore.analysis._detect_result import token_statistics
from actstore.errors import ProbeMismatchError, ReadOnlyError, UnknownNameError
from tests._fixtures.analysis import SIGNAL_LAYER, planted_set


@pytest.fixture(scope="module")
def probes(planted_cache):
    return fit_probes(
        planted_cache, prompt_set="arithmetic", target="value", alphas=[0.01, 0.1, 1.0, 10.0]
    )


def test_planted_signal_is_recovered_and_controls_are_not(planted_cache, probes) -> None:
    res = detect(planted_cache, probes, prompt_set="physics", target="v_squared")
    assert res.span == "v_squared"
    assert res.best_layer == SIGNAL_LAYER
    st = res.stats.sel(layer=SIGNAL_LAYER)
    planted = actstore.open(planted_cache, "physics")["span_mask"].values[:, 0]
    planted_pos = planted.argmax(axis=1)
    # Recovered position: the best-matching token is the planted one for >= 95% of prompts.
    assert (st["best_token"].sel(control="probe").values == planted_pos).mean() >= 0.95
    assert st["hit"].sel(control="probe").values.mean() >= 0.95
    assert np.median(st["span_rank"].sel(control="probe").values) == 1
    for control in ("shuffled_probe", "random_target"):
        assert (st["best_token"].sel(control=control).values == planted_pos).mean() <= 0.10
        assert st["hit"].sel(control=control).values.mean() <= 0.10
    summary = {r["layer"]: r for r in res.summary()}
    row = summary[SIGNAL_LAYER]
    # The reference's "average minimum error" beside its chance level.
    assert row["probe_mean_min_error"] < 0.2 * row["random_target_mean_min_error"]
    assert row["probe_mean_min_error"] < 0.2 * row["shuffled_probe_mean_min_error"]
    assert (st["best_token_str"].sel(control="probe").values == "<v>").mean() >= 0.95


def test_predictions_written_back_with_lineage_and_padding_excluded(planted_cache, probes):
    res = detect(planted_cache, probes, prompt_set="physics", target="v_squared", name="vsq")
    ds = actstore.open(planted_cache, "physics")
    pred = ds["vsq"].values
    n_tokens = ds["n_tokens"].values
    pad = np.arange(ds.sizes["token"])[None, :] >= n_tokens[:, None]
    assert np.isnan(pred.transpose(0, 2, 1)[pad]).all()
    assert np.isfinite(pred.transpose(0, 2, 1)[~pad]).all()
    # Independent reference: numpy on the activations read back, one prompt at a time.
    coef, icept = probes.weights()
    acts = ds["resid_post"].values.astype(np.float64)
    for p in (0, 7, 50):
        n = n_tokens[p]
        ref = np.einsum("ltd,ld->lt", acts[p, :, :n], coef) + icept[:, None]
        np.testing.assert_allclose(pred[p, :, :n], ref, rtol=1e-5, atol=1e-3)
    lineage = ds["vsq"].attrs["actstore"]["lineage"]
    assert lineage["probe"]["prompt_set"] == "arithmetic"
    assert lineage["target"] == "v_squared"
    assert "vsq_control" in ds
    np.testing.assert_allclose(res.predictions.sel(probe="fit").values, pred, equal_nan=True)


def test_token_statistics_against_a_loop() -> None:
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 10, size=(6, 2, 9))
    target = rng.uniform(0, 10, size=6)
    n_tokens = np.array([9, 3, 5, 1, 8, 9])
    span = np.zeros((6, 9), dtype=bool)
    span[:, 2] = True
    span[3] = False  # no span token inside the prompt
    st = token_statistics(pred, target, n_tokens, span)
    for p in range(6):
        for layer in range(2):
            err = np.abs(pred[p, layer, : n_tokens[p]] - target[p])
            assert st["best_token"][p, layer] == err.argmin()
            assert st["best_error"][p, layer] == err.min()
            std = err.std()
            # z is undefined (NaN) where the token errors do not vary, e.g. one real token
            z = (err.mean() - err.min()) / std if std > 0 else np.nan
            assert st["z"][p, layer] == pytest.approx(z, nan_ok=True)
            m = span[p, : n_tokens[p]]
            if m.any():
                assert st["span_error"][p, layer] == err[m].min()
                assert st["span_rank"][p, layer] == 1 + (err[~m] < err[m].min()).sum()
                assert st["hit"][p, layer] == float(m[err.argmin()])
            else:
                assert np.isnan(st["span_rank"][p, layer])


def test_refuses_mismatched_probes(planted_cache, probes) -> None:
    other = planted_set(n_prompts=20, kind="test", seed=3, d_model=16)
    with pytest.raises(ProbeMismatchError, match="d_model"):
        detect(other, probes, prompt_set="physics", target="v_squared", write=False)
    other_model = planted_set(n_prompts=20, kind="test", seed=3, model="another-model")
    with pytest.raises(ProbeMismatchError, match="model"):
        detect(other_model, probes, prompt_set="physics", target="v_squared", write=False)
    res = detect(
        other_model,
        probes,
        prompt_set="physics",
        target="v_squared",
        write=False,
        allow_model_mismatch=True,
    )
    assert res.stats.sizes["prompt"] == 20
    fewer = planted_set(n_prompts=20, kind="test", seed=3, layers=(3, 15), signal_layer=15)
    with pytest.warns(UserWarning, match=r"leaving out \[9, 21\]"):
        res = detect(fewer, probes, prompt_set="physics", target="v_squared", write=False)
    assert res.stats["layer"].values.tolist() == [3, 15]
    none = planted_set(n_prompts=20, kind="test", seed=3, layers=(4, 16), signal_layer=16)
    with pytest.raises(ProbeMismatchError, match="some of the probes' layers"):
        detect(none, probes, prompt_set="physics", target="v_squared", write=False)


def test_bad_detect_arguments(planted_cache, planted_pair, probes) -> None:
    _, test = planted_pair
    with pytest.raises(UnknownNameError, match="expected a span"):
        detect(test, probes, prompt_set="physics", target="v_squared", span="x", write=False)
    with pytest.raises(ReadOnlyError, match="write=False"):
        detect(test, probes, prompt_set="physics", target="v_squared")
    with pytest.raises(UnknownNameError, match="label column"):
        detect(test, probes, prompt_set="physics", target="nope", write=False)
