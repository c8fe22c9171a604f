"""Standardisation and the alpha search (issue 12): against scikit-learn on the same data and folds.

``standardize=True`` must equal ``make_pipeline(StandardScaler(), Ridge(alpha))`` with the scaler
fitted inside each training fold; the default grid is relative to each layer's scale; a best
alpha at an end of the grid is extended or flagged, never silent.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from actstore.analysis import RidgeProbe, fit_probes
from actstore.analysis._alphasearch import BOUND, DEFAULT_FACTORS
from tests._fixtures.analysis import random_set

TOL = 1e-6


def _data(n: int, d: int, seed: int, col_scales: np.ndarray | None = None, offset: float = 3.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    scales = 10 ** rng.uniform(-2, 2, size=d) if col_scales is None else col_scales
    x = (offset + z * scales).astype(np.float32)
    y = z @ rng.normal(size=d) + 0.5 * rng.normal(size=n) + 7.0
    return x, y


def _check_against_pipeline(probe: RidgeProbe, x: np.ndarray, y: np.ndarray, seed: int) -> None:
    x64 = x.astype(np.float64)
    folds = list(KFold(probe.cv, shuffle=True, random_state=seed).split(x64))
    for i, alpha in enumerate(probe.alphas_):
        for f, (train, test) in enumerate(folds):
            ref = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x64[train], y[train])
            r2 = r2_score(y[test], ref.predict(x64[test]))
            assert abs(probe.cv_r2_folds_[f, i] - r2) <= TOL, (f, alpha)
    ref = make_pipeline(StandardScaler(), Ridge(alpha=probe.alpha_)).fit(x64, y)
    y_sd = y.std()
    assert np.abs(probe.predict(x64) - ref.predict(x64)).max() <= TOL * y_sd
    # Raw-space coefficients: the pipeline's coefficients divided by the scaler's scale.
    raw = ref[-1].coef_ / ref[0].scale_
    assert np.abs(probe.coef_ - raw).max() <= TOL * np.abs(raw).max()


@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize(("n", "d"), [(120, 10), (30, 50)], ids=["n>d", "n<d"])
def test_standardize_equals_scaler_ridge_pipeline_per_fold(solver: str, n: int, d: int) -> None:
    x, y = _data(n, d, seed=3)
    x[:, 2] = 4.0  # a constant column: the scaler leaves it at scale 1
    probe = RidgeProbe([0.1, 1.0, 10.0], cv=4, random_state=5, solver=solver, standardize=True).fit(
        x, y
    )
    _check_against_pipeline(probe, x, y, seed=5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    lo=st.floats(-3, 1),
    spread=st.floats(0, 4),
    offset=st.sampled_from([0.0, 100.0, 1e4]),
    dual=st.booleans(),
)
def test_standardize_equals_pipeline_across_scales(
    seed: int, lo: float, spread: float, offset: float, dual: bool
) -> None:
    n, d = (24, 30) if dual else (80, 8)
    scales = 10 ** np.random.default_rng(seed).uniform(lo, lo + spread, size=d)
    x, y = _data(n, d, seed, col_scales=scales, offset=offset)
    probe = RidgeProbe([0.3, 3.0, 30.0], cv=3, random_state=seed % 7, standardize=True).fit(x, y)
    _check_against_pipeline(probe, x, y, seed=seed % 7)


def test_standardize_from_cache_equals_pipeline(tmp_path) -> None:
    from tests._fixtures.analysis import write_set

    n, d = 90, 12
    ds = random_set(n=n, d_model=d, n_layers=2, seed=4)
    acts = ds["resid_post"].values
    acts *= (10 ** np.linspace(-2, 2, d)).astype(np.float32)  # dims whose scales differ 1e4x
    ds = ds.assign(
        text=("prompt", np.array([f"p{i}" for i in range(n)])),
        token_id=(("prompt", "token"), np.ones((n, ds.sizes["token"]), np.int32)),
        token_str=(("prompt", "token"), np.full((n, ds.sizes["token"]), "x")),
    )
    ds.attrs["actstore"] = {"fingerprint": {"model": "m"}}
    cache = write_set(tmp_path / "c.zarr", "s", ds, block_size=7)
    probes = fit_probes(
        cache, prompt_set="s", target="value", alphas=[0.1, 1, 10], seed=2, standardize=True
    )
    assert probes.lineage["standardize"] is True
    last = ds["n_tokens"].values - 1
    y = ds["value"].values
    folds = list(KFold(5, shuffle=True, random_state=2).split(y))
    for i in range(len(probes.layers)):
        x = acts[np.arange(n), i, last].astype(np.float64)
        for j, alpha in enumerate(probes.dataset["alpha_values"].values[i]):
            for f, (tr, te) in enumerate(folds):
                ref = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x[tr], y[tr])
                r2 = r2_score(y[te], ref.predict(x[te]))
                assert abs(probes.dataset["cv_r2_fold"].values[f, i, j] - r2) <= TOL


# -- the alpha search ------------------------------------------------------------------------------
def test_default_grid_is_relative_to_trace_over_d() -> None:
    x, y = _data(100, 6, seed=1)
    probe = RidgeProbe(None, cv=3).fit(x, y)
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    scale = np.trace(xc.T @ xc) / x.shape[1]
    # Every default factor is in the searched grid (extensions only add to it).
    for factor in DEFAULT_FACTORS:
        assert np.isclose(probe.alphas_, factor * scale, rtol=1e-9).any()
    std = RidgeProbe(None, cv=3, standardize=True).fit(x, y)
    assert np.isclose(std.alphas_, len(y) * 1e-6, rtol=1e-9).any()  # z-scores: trace/d = n


@pytest.mark.parametrize("grid", [[1e4, 1e5, 1e6], [1e-4, 1e-3, 1e-2]], ids=["high", "low"])
def test_edge_is_extended_until_interior(grid: list[float]) -> None:
    # A weak signal in 40 dims: the best alpha (about 100 here) lies outside either grid.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 40)).astype(np.float32)
    y = x @ rng.normal(size=40) * 0.3 + rng.normal(size=80) * 2
    probe = RidgeProbe(grid, cv=5).fit(x, y)
    assert set(grid) <= set(probe.alphas_) and len(probe.alphas_) > len(grid)
    assert probe.alpha_at_edge_ is None
    assert probe.alpha_ != probe.alphas_.min()
    # The choice equals an exhaustive sklearn search over the same (extended) grid.
    folds = KFold(5, shuffle=True, random_state=0)
    ref = []
    for a in probe.alphas_:
        pred_r2 = [
            r2_score(y[te], Ridge(alpha=a).fit(x[tr], y[tr]).predict(x[te]))
            for tr, te in folds.split(x)
        ]
        ref.append(np.mean(pred_r2))
    assert probe.alpha_ == probe.alphas_[int(np.argmax(ref))]


def test_edge_that_cannot_become_interior_is_flagged_at_the_bound() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = rng.normal(size=60)  # no signal: more shrinkage is always better
    probe = RidgeProbe(None, cv=3).fit(x, y)
    assert probe.alpha_at_edge_ == "high"
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    scale = np.trace(xc.T @ xc) / x.shape[1]
    assert probe.alpha_ == pytest.approx(BOUND[1] * scale, rel=1e-9)


def test_single_alpha_is_neither_extended_nor_flagged() -> None:
    x, y = _data(50, 4, seed=0)
    probe = RidgeProbe(1.0).fit(x, y)
    assert list(probe.alphas_) == [1.0] and probe.alpha_at_edge_ is None


def test_probeset_reports_edges_in_metrics_and_json(planted_pair) -> None:
    train, _ = planted_pair
    probes = fit_probes(train, prompt_set="s", target="value", cv=3)
    rows = probes.metrics()
    assert all(r["alpha_at_edge"] in (None, "low", "high") for r in rows)
    grid = probes.dataset["alpha_values"].values
    for i, r in enumerate(rows):
        where = int(np.flatnonzero(grid[i] == r["alpha"])[0])
        at = {0: "low", grid.shape[1] - 1: "high"}.get(where)
        assert r["alpha_at_edge"] == at
    assert probes.to_dict()["alpha_relative"] is True
    assert probes.lineage["alpha_at_edge"] == {str(r["layer"]): r["alpha_at_edge"] for r in rows}


@pytest.mark.parametrize("standardize", [False, True])
def test_rows_that_do_not_vary_fit_the_mean(standardize: bool) -> None:
    # trace(C) / d is 0: the relative grid falls back to absolute alphas instead of alpha = 0.
    y = np.arange(30.0)
    x = np.full((30, 4), 2.5, dtype=np.float32)
    probe = RidgeProbe(None, cv=3, standardize=standardize).fit(x, y)
    assert np.all(probe.alphas_ > 0) and np.isfinite(probe.cv_r2_).all()
    np.testing.assert_allclose(probe.predict(x), y.mean())
