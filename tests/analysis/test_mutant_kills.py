"""Analysis behaviour that hand-made mutants showed untested (see tests/mutation/).

Every expected value comes from an independent reference: scikit-learn's ``KFold``/``Ridge`` on
the same rows, or numpy on the returned arrays.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_score

from actstore.analysis import detect, fit_probes
from actstore.analysis._ridge import kfold_assign
from actstore.analysis._stats import Moments
from tests._fixtures.analysis import planted_set, random_set


@pytest.mark.parametrize(("n", "k"), [(5, 5), (7, 7), (2, 2)])
def test_as_many_prompts_as_folds(n: int, k: int) -> None:
    want = np.empty(n, dtype=np.int64)
    for f, (_, test) in enumerate(KFold(k, shuffle=True, random_state=3).split(np.arange(n))):
        want[test] = f
    np.testing.assert_array_equal(kfold_assign(n, k, 3), want)


@pytest.mark.parametrize(("n", "d", "solver"), [(12, 40, "dual"), (40, 12, "primal")])
def test_auto_solver_is_dual_only_with_fewer_samples_than_features(n, d, solver) -> None:
    ds = random_set(n=n, d_model=d, n_layers=1, seed=1)
    probes = fit_probes(ds, prompt_set="s", target="value", cv=3, control="none")
    assert probes.lineage["solver"] == solver


def _last_rows(ds, layer_pos: int) -> tuple[np.ndarray, np.ndarray]:
    n = ds.sizes["prompt"]
    last = ds["n_tokens"].values - 1
    return ds["resid_post"].values[np.arange(n), layer_pos, last].astype(np.float64), ds[
        "value"
    ].values


@pytest.mark.parametrize("grouped", [False, True], ids=["one-pass", "layer-by-layer"])
def test_large_common_offset_and_layer_groups_equal_sklearn(grouped: bool) -> None:
    """Activations around 1e5 (a common offset 1e5 times their spread), 3 layers, primal solver;
    with ``max_memory`` for one layer's statistics the layers are fitted in three passes."""
    rng = np.random.default_rng(5)
    ds = random_set(n=80, d_model=6, n_layers=3, seed=7)
    acts = ds["resid_post"].values.astype(np.float64)
    acts = (acts - acts.mean()) + 1e5 + rng.normal(size=6) * 1e3
    ds = ds.assign(resid_post=(ds["resid_post"].dims, acts.astype(np.float32)))
    x0, _ = _last_rows(ds, 0)
    ds = ds.assign(value=("prompt", x0 @ rng.normal(size=6) + rng.normal(size=80)))
    alphas = [0.01, 1.0, 100.0]
    kw = {"max_memory": Moments.nbytes(5, 1, 6, 1)} if grouped else {}
    probes = fit_probes(
        ds, prompt_set="s", target="value", alphas=alphas, cv=5, seed=4, control="none", **kw
    )
    assert probes.lineage["solver"] == "primal"
    folds = KFold(5, shuffle=True, random_state=4)
    for j in range(3):
        x, y = _last_rows(ds, j)
        # The grid may have been extended at an edge: compare on the grid that was searched.
        grid = probes.dataset["alpha_values"].values[j]
        assert set(alphas) <= set(grid)
        r2 = [cross_val_score(Ridge(alpha=a), x, y, cv=folds).mean() for a in grid]
        np.testing.assert_allclose(probes.dataset["cv_r2"].values[j], r2, atol=1e-6)
        best = grid[int(np.argmax(r2))]
        ref = Ridge(alpha=best).fit(x, y)
        np.testing.assert_allclose(
            probes.dataset["coef"].values[j], ref.coef_, atol=1e-6 * np.abs(ref.coef_).max()
        )
        pred = x @ probes.dataset["coef"].values[j] + probes.dataset["intercept"].values[j]
        np.testing.assert_allclose(pred, ref.predict(x), atol=1e-6 * np.abs(y).max())


def test_all_positions_across_many_read_tasks_equals_sklearn() -> None:
    """Enough prompts of 64 x 256 float32 that rows are read in several tasks: samples of prompts
    at task boundaries land in the right batch."""
    from tests.analysis.test_folds_and_subsets import _prompt_folds, _rows_all_positions

    ds = planted_set(
        n_prompts=150, kind="train", d_model=256, n_tokens_max=64, layers=(3, 15), seed=2
    )
    # 64 KiB per prompt and layer: 4 MiB read tasks hold 64 prompts, so 3 tasks
    probes = fit_probes(
        ds,
        prompt_set="s",
        target="value",
        position="all",
        layers=[15],
        alphas=[10.0],
        cv=3,
        control="none",
    )
    x, y, prompt = _rows_all_positions(ds, 1)
    from sklearn.model_selection import PredefinedSplit

    split = PredefinedSplit(_prompt_folds(150, 3, 0, prompt))
    per_fold = cross_val_score(Ridge(alpha=10.0), x, y, cv=split)
    np.testing.assert_allclose(probes.dataset["cv_r2_fold"].values[:, 0, 0], per_fold, atol=1e-6)


@pytest.fixture(scope="module")
def detection():
    """Planted train/test pair in memory; two test prompts without a label, three without span."""
    train = planted_set(n_prompts=60, kind="train", seed=1, d_model=16)
    test = planted_set(n_prompts=30, kind="test", seed=2, d_model=16)
    v = test["v_squared"].values.copy()
    v[[4, 9]] = np.nan
    mask = test["span_mask"].values.copy()
    mask[[1, 2, 3]] = False
    test = test.assign(v_squared=("prompt", v), span_mask=(test["span_mask"].dims, mask))
    probes = fit_probes(train, prompt_set="arithmetic", target="value", alphas=[0.1, 1.0])
    with warnings.catch_warnings():  # numpy's empty-slice warnings for the unlabelled prompts
        warnings.simplefilter("ignore", RuntimeWarning)
        res = detect(test, probes, prompt_set="physics", target="v_squared", write=False)
    return test, probes, res


def test_summary_is_the_mean_of_the_per_prompt_statistics(detection) -> None:
    _, _, res = detection
    st = res.stats
    for row in res.summary():
        layer = row["layer"]
        for control in st["control"].values:
            s = st.sel(control=control, layer=layer)
            best = s["best_error"].values
            assert row[f"{control}_mean_min_error"] == pytest.approx(np.nanmean(best))
            assert row[f"{control}_mean_z"] == pytest.approx(np.nanmean(s["z"].values))
            hit = s["hit"].values
            assert np.isnan(hit[[1, 2, 3]]).all()  # no span: no hit or miss
            assert row[f"{control}_hit_rate"] == pytest.approx(np.nanmean(hit))
            assert row[f"{control}_median_span_rank"] == pytest.approx(
                np.nanmedian(s["span_rank"].values)
            )


def test_prompts_without_a_label_get_no_statistics(detection) -> None:
    _, _, res = detection
    st = res.stats
    for prompt in (4, 9):
        if prompt not in st["prompt"].values:
            continue  # left out entirely is fine too
        row = st.sel(prompt=prompt)
        for var in ("best_error", "best_pred", "z", "span_error", "span_rank", "hit"):
            assert np.isnan(row[var].values).all(), var


def test_random_target_control_is_drawn_inside_the_targets_range(detection) -> None:
    test, _, res = detection
    y = test["v_squared"].values
    rand = res.stats["target"].sel(control="random_target").values
    ok = np.isfinite(rand)
    assert ok.sum() >= 28
    assert (rand[ok] >= np.nanmin(y)).all() and (rand[ok] <= np.nanmax(y)).all()
    # spread over the range, not a constant or the true targets
    assert np.nanstd(rand) > 0.2 * np.nanstd(y)
    assert not np.allclose(rand[ok], y[ok], equal_nan=True)


def test_probes_of_another_width_are_refused_both_ways() -> None:
    from actstore.errors import ProbeMismatchError

    train = planted_set(n_prompts=30, kind="train", seed=1, d_model=16)
    probes = fit_probes(train, prompt_set="arithmetic", target="value")
    for d in (8, 32):
        other = planted_set(n_prompts=10, kind="test", seed=3, d_model=d)
        with pytest.raises(ProbeMismatchError, match="d_model"):
            detect(other, probes, prompt_set="physics", target="v_squared", write=False)


def test_unlabelled_prompts_are_left_out_and_metrics_are_the_chosen_alphas() -> None:
    """Prompts whose label is NaN are no samples; each metrics() row reports the chosen alpha's
    held-out and training figures (here the chosen alpha is not the first of the grid)."""
    ds = random_set(n=70, d_model=6, n_layers=2, seed=9)
    y = ds["value"].values.copy()
    y[[3, 10, 11, 40]] = np.nan
    ds = ds.assign(value=("prompt", y))
    alphas = [1e4, 0.1, 3.0]
    probes = fit_probes(ds, prompt_set="s", target="value", alphas=alphas, cv=4, seed=1)
    assert probes.lineage["n_prompts"] == probes.lineage["n_samples"] == 66
    keep = np.isfinite(y)
    folds = KFold(4, shuffle=True, random_state=1)
    chosen = []
    for j, row in enumerate(probes.metrics()):
        x, _ = _last_rows(ds, j)
        x, yk = x[keep], y[keep]
        # The grid searched (sorted, extended at an edge) holds the one given.
        grid = list(probes.dataset["alpha_values"].values[j])
        assert set(alphas) <= set(grid)
        r2 = [cross_val_score(Ridge(alpha=a), x, yk, cv=folds).mean() for a in grid]
        best = int(np.argmax(r2))
        chosen.append(best)
        assert row["alpha"] == grid[best]
        assert row["cv_r2"] == pytest.approx(r2[best], abs=1e-6)
        mae = -cross_val_score(
            Ridge(alpha=grid[best]), x, yk, cv=folds, scoring="neg_mean_absolute_error"
        ).mean()
        assert row["cv_mae"] == pytest.approx(mae, rel=1e-6)
        assert row["train_r2"] == pytest.approx(
            Ridge(alpha=grid[best]).fit(x, yk).score(x, yk), abs=1e-6
        )
    assert any(c != 0 for c in chosen)  # some layer's chosen alpha is not the first of the grid


def test_permutation_p_counts_null_statistics_tied_with_the_observed() -> None:
    """``(1 + #{null <= observed}) / (N + 1)``: a null statistic equal to the observed one is as
    good as it, so it counts (ties are common with few prompts or rounded errors)."""
    from actstore.analysis._significance import permutation_p

    obs = np.array([1.0, 2.0, 0.25])
    null = np.array([[1.0, 1.0, 3.0, 0.5], [2.0, 5.0, 5.0, 5.0], [0.5, 0.5, 0.5, 0.5]])
    ref = [(1 + sum(v <= obs[i] for v in null[i])) / (null.shape[1] + 1) for i in range(3)]
    assert ref == [0.8, 0.4, 0.2]  # the loop itself counts the ties
    np.testing.assert_allclose(permutation_p(obs, null), ref, rtol=0, atol=0)


def test_beats_chance_needs_both_corrected_p_values_below_the_level() -> None:
    """Layer 0 beats both nulls; layer 1 beats the shuffled-label null only (its random-target
    p is 1): it does not beat chance. Reference: the two permutation p-values from their
    definition, Holm over the two layers by hand."""
    from actstore.analysis._significance import LEVEL, significance

    n = 99
    observed = np.array([1.0, 1.0])
    shuffled = np.full((2, n), 2.0)  # every shuffled-label probe worse than both layers
    random = np.stack([np.full(n, 2.0), np.full(n, 0.5)])  # layer 1: every random target better
    sig = significance(observed, shuffled, random, [3, 9], n, seed=0)
    p = [(1 + sum(v <= 1.0 for v in shuffled[i])) / (n + 1) for i in range(2)]
    p_r = [(1 + sum(v <= 1.0 for v in random[i])) / (n + 1) for i in range(2)]
    assert p == [0.01, 0.01] and p_r == [0.01, 1.0]
    # Holm, two layers: the smaller p times 2, the larger times 1 (then the running maximum)
    p_c = [0.02, 0.02]
    p_rc = [0.02, 1.0]
    np.testing.assert_allclose(sig["p_value_corrected"].values, p_c)
    np.testing.assert_allclose(sig["p_value_random_target_corrected"].values, p_rc)
    want = [p_c[i] < LEVEL and p_rc[i] < LEVEL for i in range(2)]
    assert want == [True, False]
    assert sig["beats_chance"].values.tolist() == want


def test_merged_moments_of_several_layers_equal_numpy_per_layer() -> None:
    """Layers of very different means merged over several batches: each layer's moments equal
    numpy's from all of its rows at once (a merge must use that layer's own running mean)."""
    rng = np.random.default_rng(11)
    n, n_layers, d, k = 48, 3, 4, 3
    offsets = np.array([0.0, 50.0, -200.0])[None, :, None]
    x = (offsets + rng.normal(size=(n, n_layers, d))).astype(np.float32)
    y = rng.normal(size=(n, 1))
    fold = rng.integers(0, k, size=n)
    mom = Moments.zeros(k, n_layers, d, 1)
    for lo, hi in [(0, 10), (10, 29), (29, 48)]:
        mom.add(x[lo:hi], y[lo:hi], fold[lo:hi])
    for f in range(k):
        yf = y[fold == f]
        yc = yf - yf.mean(0)
        for j in range(n_layers):
            xf = x[fold == f, j].astype(np.float64)
            xc = xf - xf.mean(0)
            np.testing.assert_allclose(mom.mx[f, j], xf.mean(0), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(mom.cxx[f, j], xc.T @ xc, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(mom.cxy[f, j], xc.T @ yc, rtol=1e-9, atol=1e-9)


def test_a_hook_left_out_of_the_positions_reads_the_full_array(tmp_path) -> None:
    """Positions materialised for ``resid_post`` only: a probe on ``resid_mid`` reads the full
    array, and equals (bit for bit) the same fit made before anything was materialised."""
    from actstore.analysis._data import open_source, select_positions
    from actstore.analysis._positions import row_source
    from actstore.errors import SampleLossWarning
    from actstore.store import materialize_positions, open_cache
    from tests._fixtures.store import make_synthetic, write_synthetic

    syn = make_synthetic(
        n_prompts=30, d_model=8, dtype="float32", hooks=("resid_post", "resid_mid")
    )
    url = tmp_path / "c.zarr"
    write_synthetic(url, syn)

    def fit():
        return fit_probes(
            url, prompt_set="arith", target="value", hook="resid_mid", position="last", cv=3
        ).dataset

    before = fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleLossWarning)
        materialize_positions(open_cache(url, mode="r+"), "arith", "last", hooks=["resid_post"])
    src = open_source(url, "arith")
    prompt, token = select_positions(src.ds, "last")
    assert row_source(src, "resid_post", "last", prompt, token).materialised
    assert not row_source(src, "resid_mid", "last", prompt, token).materialised
    after = fit()
    for v in before.data_vars:
        np.testing.assert_array_equal(before[v].values, after[v].values, err_msg=v)
