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

from actstore.analysis import detect, fit_probes, kfold_assign
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
