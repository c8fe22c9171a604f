"""Degenerate targets (issue 10 item 3) and silent sample loss (item 10).

Constant targets are refused, constant folds give NaN with a warning, every prompt left out is
named in a warning with its count and reason, and the numbers on the kept rows equal scikit-learn
(or a numpy loop) on exactly those rows.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from actstore.analysis import RidgeProbe, detect, fit_probes
from actstore.analysis._ridge import kfold_assign
from actstore.errors import (
    DegenerateTargetError,
    InvalidArgumentError,
    SampleLossWarning,
    UndefinedMetricWarning,
)
from tests._fixtures.analysis import planted_set, write_set

LAYER = 15


def _train(n: int = 40, seed: int = 0):
    return planted_set(n_prompts=n, kind="train", seed=seed)


def _sklearn_cv(x: np.ndarray, y: np.ndarray, alpha: float, cv: int, seed: int) -> np.ndarray:
    folds = KFold(cv, shuffle=True, random_state=seed).split(x)
    return np.array(
        [r2_score(y[te], Ridge(alpha=alpha).fit(x[tr], y[tr]).predict(x[te])) for tr, te in folds]
    )


# -- item 3: constant targets ---------------------------------------------------------------------
@pytest.mark.parametrize("n", [40, 400])
@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_constant_label_is_refused_for_every_size(n: int, solver: str) -> None:
    # The input: c = 0.1 for every prompt gave R² 1.0000 (40 prompts) or 0.0000 (larger).
    ds = _train(n)
    ds["c"] = ("prompt", np.full(n, 0.1))
    with pytest.raises(DegenerateTargetError) as info:
        fit_probes(ds, prompt_set="s", target="c", solver=solver, cv=5)
    msg = str(info.value)
    assert msg.startswith("expected a target that varies, got label 'c' constant at 0.1 for all")
    assert f"for all {n} prompts" in msg and "\n" not in msg


def test_constant_within_rounding_is_refused_and_small_real_spread_is_not() -> None:
    ds = _train(40)
    rng = np.random.default_rng(0)
    ds["c"] = ("prompt", 0.1 + 1e-13 * rng.normal(size=40))  # spread ~4e-13 <= 1e-10 * 0.1
    with pytest.raises(DegenerateTargetError, match="to within"):
        fit_probes(ds, prompt_set="s", target="c", cv=5)
    x = rng.normal(size=(40, 8))
    with pytest.raises(DegenerateTargetError, match=r"constant at 0\.1 for all 40 samples"):
        RidgeProbe(cv=5).fit(x, np.full(40, 0.1))
    y = 1e6 + 1e-3 * (x @ rng.normal(size=8))  # spread ~1e-9 of the scale: a real target
    probe = RidgeProbe([1e-6], cv=5).fit(x, y)
    np.testing.assert_allclose(probe.cv_r2_folds_[:, 0], _sklearn_cv(x, y, 1e-6, 5, 0), atol=1e-6)


def test_constant_among_the_kept_prompts_is_refused() -> None:
    # The label varies only through a prompt that is left out (NaN elsewhere it is 0.1).
    ds = _train(40)
    y = np.full(40, 0.1)
    y[3] = np.nan
    ds["c"] = ("prompt", y)
    with pytest.raises(DegenerateTargetError, match="for all 39 prompts"):
        fit_probes(ds, prompt_set="s", target="c", cv=5)


def test_infinite_label_is_refused() -> None:
    ds = _train(40)
    y = ds["value"].values.copy()
    y[[4, 9]] = [np.inf, -np.inf]
    ds["value"] = ("prompt", y)
    with pytest.raises(DegenerateTargetError, match=r"got inf for 2 of 40 prompts \(e.g. 4, 9\)"):
        fit_probes(ds, prompt_set="s", target="value", cv=5)


def test_non_finite_inputs_of_the_in_memory_probe_are_refused() -> None:
    x = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(InvalidArgumentError, match="finite"):
        RidgeProbe().fit(x, np.r_[np.nan, np.arange(19.0)])
    x[3, 1] = np.inf
    with pytest.raises(InvalidArgumentError, match="finite"):
        RidgeProbe().fit(x, np.arange(20.0))


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_non_finite_activations_are_refused(solver: str) -> None:
    ds = _train(40)
    ds["resid_post"].values[5, 1, :] = np.nan
    with pytest.raises(InvalidArgumentError, match="expected finite activations"):
        fit_probes(ds, prompt_set="s", target="value", cv=5, solver=solver)


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_constant_test_fold_is_nan_with_a_warning(solver: str) -> None:
    rng = np.random.default_rng(1)
    n, k = 30, 3
    x = rng.normal(size=(n, 40 if solver == "dual" else 6))
    fold = kfold_assign(n, k, seed=0)
    y = x[:, 0] + 0.1 * rng.normal(size=n)
    y[fold == 1] = 2.5  # fold 1's held-out targets are all equal: its R² is undefined
    with pytest.warns(UndefinedMetricWarning, match=r"fold\(s\) 1 of 3 for y.*other 2"):
        probe = RidgeProbe([0.5], cv=k, solver=solver).fit(x, y)
    ref = _sklearn_cv(x, y, 0.5, k, 0)
    assert np.isnan(probe.cv_r2_folds_[1, 0])
    np.testing.assert_allclose(probe.cv_r2_folds_[[0, 2], 0], ref[[0, 2]], atol=1e-6)
    assert probe.cv_r2_[0] == pytest.approx(ref[[0, 2]].mean(), abs=1e-6)
    # The training R² is defined (the whole target varies) and equals scikit-learn's.
    full = Ridge(alpha=0.5).fit(x, y)
    assert probe.train_r2_[0] == pytest.approx(r2_score(y, full.predict(x)), abs=1e-6)


def test_constant_fold_of_the_shuffled_control_is_named() -> None:
    ds = _train(30)
    n, k, seed = 30, 3, 0
    fold = kfold_assign(n, k, seed)
    perm = np.random.default_rng(seed).permutation(n)
    control = np.round(ds["value"].values, 1)
    control[fold == 2] = 7.0  # what the control sees in fold 2: constant
    y = np.empty(n)
    y[perm] = control  # fit_probes' control is y[perm]
    ds["value"] = ("prompt", y)
    with pytest.warns(UndefinedMetricWarning) as rec:
        probes = fit_probes(ds, prompt_set="s", target="value", cv=k, seed=seed)
    msgs = [str(w.message) for w in rec if issubclass(w.category, UndefinedMetricWarning)]
    assert any("fold(s) 2 of 3 for the shuffled control of label 'value'" in m for m in msgs)
    fold_r2 = probes.dataset["control_cv_r2_fold"].values
    assert np.isnan(fold_r2[2]).all() and np.isfinite(fold_r2[[0, 1]]).all()
    np.testing.assert_allclose(probes.dataset["control_cv_r2"].values, fold_r2[[0, 1]].mean(0))


# -- item 10: samples left out -------------------------------------------------------------------
def _span_at(ds, starts: np.ndarray):
    mask = np.zeros(ds["span_mask"].shape, dtype=bool)
    for p, s in enumerate(starts):
        if s >= 0:
            mask[p, 0, s : s + 2] = True
    ds["span_mask"] = (("prompt", "span", "token"), mask)
    return ds


def test_before_span_at_token_zero_warns_and_fits_the_kept_prompts() -> None:
    # The input: no BOS, the span at token 0 in 29 of 40 prompts.
    ds = _train(40)
    starts = np.full(40, 5)
    at_zero = np.random.default_rng(3).permutation(40)[:29]
    starts[at_zero] = 0
    ds = _span_at(ds, starts)
    with pytest.warns(SampleLossWarning) as rec:
        probes = fit_probes(
            ds, prompt_set="s", target="value", position="before:answer", cv=3, alphas=[1.0]
        )
    (msg,) = [str(w.message) for w in rec]
    assert msg.startswith("position 'before:answer' selects no token in 29 of 40 prompts")
    assert "29 where span 'answer' starts at token 0, so no token precedes it" in msg
    kept = np.setdiff1d(np.arange(40), at_zero)
    li = list(ds["layer"].values).index(LAYER)
    x = ds["resid_post"].values[kept, li, 4].astype(np.float64)
    y = ds["value"].values[kept]
    ref = _sklearn_cv(x, y, 1.0, 3, 0)
    got = probes.dataset["cv_r2_fold"].sel(layer=LAYER).values[:, 0]
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert probes.lineage["n_prompts"] == 11


def test_span_absent_or_in_padding_and_nan_labels_each_warn_with_counts() -> None:
    ds = _train(40)
    n_tokens = ds["n_tokens"].values
    starts = np.full(40, 3)
    starts[[1, 2, 3]] = -1  # span absent
    ds = _span_at(ds, starts)
    ds["span_mask"].values[[7, 8], 0, n_tokens[[7, 8]].max() - 1 :] = False
    for p in (7, 8):  # span only in padding, beyond n_tokens
        ds["span_mask"].values[p, 0, :] = False
        ds["span_mask"].values[p, 0, n_tokens[p] :] = True
    y = ds["value"].values.copy()
    y[[10, 11, 12, 13]] = np.nan
    ds["value"] = ("prompt", y)
    with pytest.warns(SampleLossWarning) as rec:
        probes = fit_probes(ds, prompt_set="s", target="value", position="span:answer", cv=3)
    msgs = sorted(str(w.message) for w in rec)
    assert len(msgs) == 2
    assert (
        "label 'value' is missing (NaN) for 4 of 40 prompts (e.g. prompts 10, 11, 12, 13)"
        in (msgs[0])
    )
    assert msgs[1].startswith("position 'span:answer' selects no token in 5 of 36 prompts")
    assert "3 where span 'answer' is absent (e.g. prompts 1, 2, 3)" in msgs[1]
    assert (
        "2 where span 'answer' lies only in padding (beyond n_tokens) (e.g. prompts 7, 8)"
        in (msgs[1])
    )
    assert probes.lineage["n_prompts"] == 31 and probes.lineage["n_samples"] == 62


def test_nothing_lost_means_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_probes(_train(40), prompt_set="s", target="value", cv=3)


def test_cli_prints_each_warning_as_one_line(tmp_path) -> None:
    ds = _span_at(_train(40), np.r_[np.zeros(29, int), np.full(11, 5)])
    y = ds["value"].values.copy()
    y[39] = np.nan
    ds["value"] = ("prompt", y)
    write_set(tmp_path / "c.zarr", "s", ds)
    args = ["probe", "fit", str(tmp_path / "c.zarr"), "--prompt-set", "s", "--target", "value"]
    proc = subprocess.run(
        [sys.executable, "-m", "actstore", *args, "--position", "before:answer", "--cv", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    # 11 samples of 32 dims: the alpha search ends at an edge in every layer (a third line).
    assert len(lines) == 3, proc.stderr
    assert "alpha is at an end of the searched grid in layer(s) 3" in lines[2]
    assert all(line.startswith("actstore: warning: ") for line in lines)
    assert "missing (NaN) for 1 of 40 prompts" in lines[0]
    assert "selects no token in 29 of 39 prompts" in lines[1]


# -- item 10: detection ---------------------------------------------------------------------------
def test_detect_names_skipped_prompts_without_numpy_warnings() -> None:
    probes = fit_probes(_train(60), prompt_set="s", target="value", control="none", cv=3)
    test = planted_set(n_prompts=20, kind="test", seed=3)
    y = test["v_squared"].values.copy()
    y[[2, 5]] = np.nan
    test["v_squared"] = ("prompt", y)
    test["span_mask"].values[[7, 8, 9]] = False
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = detect(test, probes, prompt_set="t", target="v_squared", write=False)
    assert not [w for w in rec if issubclass(w.category, RuntimeWarning)]
    msgs = [str(w.message) for w in rec if issubclass(w.category, SampleLossWarning)]
    assert len(msgs) == 2
    assert "label 'v_squared' is missing (NaN) for 2 of 20 prompts (e.g. prompts 2, 5)" in msgs[0]
    assert "span 'v_squared' has no real token in 3 of 20 prompts (e.g. prompts 7, 8, 9)" in msgs[1]
    # The summary equals numpy on the kept prompts; the absent control is NaN, not 0 or 1.
    pred = res.predictions.sel(probe="fit").values
    n_tok = test["n_tokens"].values
    kept = np.setdiff1d(np.arange(20), [2, 5])
    spanned = np.setdiff1d(kept, [7, 8, 9])
    row = next(r for r in res.summary() if r["layer"] == LAYER)
    li = probes.layers.index(LAYER)
    best = [np.abs(pred[p, li, : n_tok[p]] - y[p]).min() for p in kept]
    assert row["probe_mean_min_error"] == pytest.approx(np.mean(best), rel=1e-6)
    span = test["span_mask"].values[:, 0]
    hits = [span[p, np.abs(pred[p, li, : n_tok[p]] - y[p]).argmin()] for p in spanned]
    assert row["probe_hit_rate"] == pytest.approx(np.mean(hits))
    assert np.isnan(row["shuffled_probe_mean_min_error"])
    assert np.isnan(row["shuffled_probe_hit_rate"]) and np.isnan(row["shuffled_probe_mean_z"])


def test_detect_z_is_nan_with_a_warning_for_single_token_prompts() -> None:
    # One fixed alpha: the default grid extends to a near-constant probe in the noise layers,
    # whose token errors then do not vary either (more undefined z than the two prompts here).
    probes = fit_probes(_train(60), prompt_set="s", target="value", cv=3, alphas=1.0)
    test = planted_set(n_prompts=20, kind="test", seed=3)
    test["n_tokens"].values[[0, 1]] = 1
    test["span_mask"].values[[0, 1], 0, :] = False
    test["span_mask"].values[[0, 1], 0, 0] = True
    with pytest.warns(UndefinedMetricWarning, match=r"z is undefined for 8 \(prompt, layer\)"):
        res = detect(test, probes, prompt_set="t", target="v_squared", write=False)
    z = res.stats["z"].sel(control="probe").values
    assert np.isnan(z[[0, 1]]).all() and np.isfinite(z[2:]).all()
