"""``standardize=True`` for the classification kinds (issue 12): equal to scikit-learn's
``make_pipeline(StandardScaler(), LogisticRegression())`` / ``(..., MeanDiffProbe())`` with the
scaler fitted inside each training fold, on columns whose scales differ by 1000x."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from actstore.analysis import MeanDiffProbe, fit_probes, load_probes, save_probes
from actstore.analysis._ridge import kfold_assign
from tests.analysis._class_data import class_cache, class_set, last_rows


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1, user_api="blas"):
        yield


def _scaled_set(n: int, seed: int):
    ds = class_set(n=n, n_classes=2, seed=seed)
    d = ds.sizes["d_model"]
    scale = 10.0 ** np.random.default_rng(seed).uniform(-1, 2, size=d)  # 0.1x .. 100x
    ds["resid_post"] = ds["resid_post"] * scale.astype(np.float32)
    return ds


def test_logistic_standardize_equals_scaler_pipeline(tmp_path) -> None:
    ds = _scaled_set(120, seed=11)
    cache = class_cache(tmp_path / "c.zarr", ds)
    alphas = [0.5, 4.0]
    probes = fit_probes(
        cache, prompt_set="ops", target="label", kind="logistic", alphas=alphas, seed=2,
        standardize=True,
    )  # fmt: skip
    raw = fit_probes(
        cache, prompt_set="ops", target="label", kind="logistic", alphas=alphas, seed=2
    )
    out = probes.dataset
    y = ds["label"].values
    fold = kfold_assign(120, 5, 2)

    def pipe(alpha: float):
        lr = LogisticRegression(C=1.0 / alpha, tol=1e-10, max_iter=10000)
        return make_pipeline(StandardScaler(), lr)

    assert probes.lineage["standardize"] is True
    for i in range(len(probes.layers)):
        x = last_rows(ds, i)
        for j, a in enumerate(alphas):
            for f in range(5):
                tr, te = fold != f, fold == f
                sk = pipe(a).fit(x[tr], y[tr])  # the scaler sees the training fold only
                ref = log_loss(y[te], sk.predict_proba(x[te]))
                got = out["cv_log_loss_fold"].values[f, i, j]
                np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
        a = float(out["alpha"].values[i])
        sk = pipe(a).fit(x, y)
        z = x @ out["coef"].values[i, 0] + out["intercept"].values[i, 0]  # raw rows, as saved
        np.testing.assert_allclose(z, sk.decision_function(x), atol=1e-4)
        assert ((z > 0).astype(int) == sk.predict(x)).mean() >= 0.99
        # Not vacuous: without standardisation the same grid gives another probe.
        assert not np.allclose(out["coef"].values[i], raw.dataset["coef"].values[i], rtol=1e-3)


def test_mean_diff_standardize_equals_scaler_pipeline(tmp_path) -> None:
    ds = _scaled_set(100, seed=4)
    cache = class_cache(tmp_path / "c.zarr", ds)
    probes = fit_probes(
        cache, prompt_set="ops", target="label", kind="mean_diff", seed=1, standardize=True
    )
    out = probes.dataset
    y = ds["label"].values
    fold = kfold_assign(100, 5, 1)
    for i in range(len(probes.layers)):
        x = last_rows(ds, i)
        for f in range(5):
            tr, te = fold != f, fold == f
            sk = make_pipeline(StandardScaler(), MeanDiffProbe()).fit(x[tr], y[tr])
            ref = roc_auc_score(y[te], sk.decision_function(x[te]))
            np.testing.assert_allclose(out["cv_roc_auc_fold"].values[f, i, 0], ref, atol=1e-12)
        sk = make_pipeline(StandardScaler(), MeanDiffProbe()).fit(x, y)
        z = x @ out["coef"].values[i, 0] + out["intercept"].values[i, 0]
        np.testing.assert_allclose(z, sk.decision_function(x), rtol=1e-6, atol=1e-6)


def test_class_grid_edge_is_flagged(tmp_path) -> None:
    ds = class_set(n=80, n_classes=2, seed=3)
    cache = class_cache(tmp_path / "c.zarr", ds)
    alphas = [1e-3, 1.0, 1e3]
    probes = fit_probes(cache, prompt_set="ops", target="label", kind="logistic", alphas=alphas)
    for row, log in zip(probes.metrics(), probes.dataset["cv_log_loss"].values, strict=True):
        best = int(np.nanargmin(log))
        assert row["alpha"] == alphas[best]
        assert row["alpha_at_edge"] == {0: "low", 2: "high"}.get(best)
    one = fit_probes(cache, prompt_set="ops", target="label", kind="logistic")
    assert [r["alpha"] for r in one.metrics()] == [1.0, 1.0]  # alphas=None: C = 1, no search
    assert all(r["alpha_at_edge"] is None for r in one.metrics())


def test_mean_diff_standardize_detection_maps_class_means_to_0_and_1(tmp_path) -> None:
    """breaker12: detection's mean-diff value is (x - midpoint) . w / (w . (mean1 - mean0)) + 0.5.
    With ``standardize`` the saved raw-space w is not the mean difference, so dividing by |w|^2
    (the unstandardised rule) squeezed every token towards 0.5."""
    ds = _scaled_set(100, seed=4)
    cache = class_cache(tmp_path / "c.zarr", ds)
    y = ds["label"].values
    for standardize in (False, True):
        probes = fit_probes(
            cache, prompt_set="ops", target="label", kind="mean_diff", seed=1,
            standardize=standardize,
        )  # fmt: skip
        w, b = probes.weights()
        for i in range(len(probes.layers)):
            x = last_rows(ds, i)
            m0, m1 = x[y == 0].mean(axis=0), x[y == 1].mean(axis=0)
            np.testing.assert_allclose([m0 @ w[i] + b[i], m1 @ w[i] + b[i]], [0, 1], atol=1e-9)
        back = load_probes(save_probes(probes, tmp_path / f"p{int(standardize)}.npz"))
        np.testing.assert_allclose(back.weights()[0], w, rtol=1e-12)
        # the shuffled control is rescaled the same way (by its own class means)
        yc = np.empty_like(y)
        perm = np.random.default_rng(1).permutation(100)
        yc[:] = y[perm]
        wc, bc = probes.weights(control=True)
        x = last_rows(ds, 0)
        c0, c1 = x[yc == 0].mean(axis=0), x[yc == 1].mean(axis=0)
        np.testing.assert_allclose([c0 @ wc[0] + bc[0], c1 @ wc[0] + bc[0]], [0, 1], atol=1e-9)
