"""The ridge engine against scikit-learn: coefficients, CV folds, R² and MAE, both solvers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_score

from actstore.analysis import RidgeProbe
from actstore.analysis._ridge import kfold_assign
from actstore.errors import InvalidArgumentError

ALPHAS = [0.05, 1.0, 20.0]


def _data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # A large common offset, like residual streams: centring from moments must not lose precision.
    x = (rng.normal(size=(n, d)) * 2 + 40).astype(np.float32)
    y = x.astype(np.float64) @ rng.normal(size=d) + rng.normal(size=n) * 3 + 100
    return x, y


@pytest.mark.parametrize("n", [7, 23, 100])
@pytest.mark.parametrize("k", [2, 5])
def test_folds_equal_sklearn_kfold(n: int, k: int) -> None:
    fold = kfold_assign(n, k, seed=3)
    for f, (_, test) in enumerate(KFold(k, shuffle=True, random_state=3).split(np.zeros(n))):
        assert np.array_equal(np.flatnonzero(fold == f), np.sort(test))


@pytest.mark.parametrize(("n", "d"), [(200, 30), (40, 120)], ids=["n>d", "n<d"])
@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_equals_sklearn_ridge_and_cross_val_score(n: int, d: int, solver: str) -> None:
    x, y = _data(n, d)
    x64 = x.astype(np.float64)
    probe = RidgeProbe(ALPHAS, cv=5, random_state=7, solver=solver).fit(x, y)
    folds = KFold(5, shuffle=True, random_state=7)
    for alpha in ALPHAS:
        # The grid may have been extended at an edge: find each alpha in the searched grid.
        i = int(np.flatnonzero(probe.alphas_ == alpha)[0])
        r2 = cross_val_score(Ridge(alpha=alpha), x64, y, cv=folds, scoring="r2")
        mae = -cross_val_score(
            Ridge(alpha=alpha), x64, y, cv=folds, scoring="neg_mean_absolute_error"
        )
        np.testing.assert_allclose(probe.cv_r2_folds_[:, i], r2, rtol=0, atol=1e-6)
        np.testing.assert_allclose(probe.cv_mae_[i], mae.mean(), rtol=1e-6)
        ref = Ridge(alpha=alpha).fit(x64, y)
        pred = ref.predict(x64)
        np.testing.assert_allclose(probe.train_mae_[i], np.abs(y - pred).mean(), rtol=1e-6)
    searched = probe.alphas_
    best = int(
        np.argmax([cross_val_score(Ridge(alpha=a), x64, y, cv=folds).mean() for a in searched])
    )
    assert probe.alpha_ == searched[best]
    ref = Ridge(alpha=probe.alpha_).fit(x64, y)
    scale = np.abs(ref.coef_).max()
    assert np.abs(probe.coef_ - ref.coef_).max() <= 1e-6 * scale
    assert probe.intercept_ == pytest.approx(ref.intercept_, rel=1e-6)
    np.testing.assert_allclose(probe.predict(x64), ref.predict(x64), rtol=1e-6)


def test_many_alphas_agree_between_solvers_and_with_sklearn() -> None:
    x, y = _data(60, 20, seed=1)
    grid = np.logspace(-3, 3, 9)
    probe = RidgeProbe(grid, solver="primal").fit(x, y)
    dual = RidgeProbe(grid, solver="dual").fit(x, y)
    np.testing.assert_allclose(probe.cv_r2_, dual.cv_r2_, atol=1e-8)
    for i, alpha in enumerate(grid):
        ref = cross_val_score(
            Ridge(alpha=alpha), x.astype(np.float64), y, cv=KFold(5, shuffle=True, random_state=0)
        )
        assert probe.cv_r2_[i] == pytest.approx(ref.mean(), abs=1e-6)


@pytest.mark.parametrize(
    ("alphas", "cv", "n"),
    [([0.0], 5, 20), ([-1.0], 5, 20), ([], 5, 20), ([1.0], 1, 20), ([1.0], 5, 3)],
)
def test_bad_arguments_are_refused(alphas: list[float], cv: int, n: int) -> None:
    x, y = _data(n, 4)
    with pytest.raises(InvalidArgumentError, match="expected"):
        RidgeProbe(alphas, cv=cv).fit(x, y)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"expected x \(sample, d_model\)"):
        RidgeProbe().fit(np.zeros((5, 3)), np.zeros(4))
