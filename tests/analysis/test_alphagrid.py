"""The default alpha grid reaches the data's spectrum: a signal carried by a small-scale column
(no standardisation) is not hidden below the grid behind an interior local maximum."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_score

from actstore.analysis import RidgeProbe
from actstore.analysis._alphasearch import BOUND, SPECTRUM_REACH, primal_spectrum


def _small_column_signal(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """150 rows, 60 dims: two "massive" dims at 100x, the target carried by a dim at 0.01x, a
    weaker part by five unit dims, and 55 noise dims (overfitting at small alpha)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(150, 60))
    x[:, 1:3] *= 100.0
    z = rng.normal(size=150)
    x[:, 0] = 0.01 * z
    y = z + 0.5 * x[:, 3:8].sum(axis=1) + 0.3 * rng.normal(size=150)
    return x.astype(np.float32), y


@pytest.mark.parametrize("seed", [0, 2])
def test_small_scale_signal_is_found_as_sklearn_finds_it(seed: int) -> None:
    x, y = _small_column_signal(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = RidgeProbe(None, cv=5, random_state=0).fit(x, y)
    folds = KFold(5, shuffle=True, random_state=0)
    x64 = x.astype(np.float64)
    wide = 10.0 ** np.arange(-10.0, 8.5, 0.5)  # 18 decades around any scale in the data
    ref = np.array([cross_val_score(Ridge(alpha=a), x64, y, cv=folds).mean() for a in wide])
    ours = float(probe.cv_r2_[list(probe.alphas_).index(probe.alpha_)])
    # Our CV R² at our alpha is sklearn's at that alpha (same folds), and near sklearn's best.
    assert ours == pytest.approx(
        cross_val_score(Ridge(alpha=probe.alpha_), x64, y, cv=folds).mean(), abs=1e-6
    )
    assert ours >= ref.max() - 0.01, (ours, ref.max(), wide[int(np.argmax(ref))])
    # The grid went down to the small column's eigenvalue (or the bound) and up past the largest.
    xc = x64 - x64.mean(axis=0)
    lam = np.linalg.eigvalsh(xc.T @ xc)
    scale = lam.sum() / x.shape[1]
    low = max(BOUND[0] * scale, SPECTRUM_REACH[0] * lam[0])
    assert probe.alphas_.min() <= low * (1 + 1e-9)
    assert probe.alphas_.max() >= min(BOUND[1] * scale, SPECTRUM_REACH[1] * lam[-1]) * (1 - 1e-9)
    # An optimum at the smallest alpha searched is flagged, never silent.
    if probe.alpha_ == probe.alphas_.min():
        assert probe.alpha_at_edge_ == "low"


@pytest.mark.parametrize("standardize", [False, True])
def test_spectrum_from_fold_moments_equals_numpy(standardize: bool) -> None:
    from sklearn.preprocessing import StandardScaler

    x, _ = _small_column_signal(1)
    x64 = x.astype(np.float64)
    fold = np.arange(len(x)) % 3
    n = np.array([(fold == f).sum() for f in range(3)], dtype=np.float64)
    mx = np.stack([x64[fold == f].mean(axis=0) for f in range(3)])
    cxx = np.stack([(x64[fold == f] - mx[f]).T @ (x64[fold == f] - mx[f]) for f in range(3)])
    ref_x = StandardScaler().fit_transform(x64) if standardize else x64 - x64.mean(axis=0)
    lam = np.linalg.eigvalsh(ref_x.T @ ref_x)
    got = primal_spectrum(n, mx, cxx, standardize)
    assert got == pytest.approx([lam[0], lam[-1]], rel=1e-6)
