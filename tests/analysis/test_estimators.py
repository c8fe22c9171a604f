"""The scikit-learn contract of the in-memory probes, and their numbers against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from actstore.analysis import LogisticProbe, MeanDiffProbe, RidgeProbe


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """scikit-learn's lbfgs (the reference) slows down ~50x when BLAS threads contend."""
    with threadpool_limits(1, user_api="blas"):
        yield


# Every check passes on the installed scikit-learn (1.9): no expected failures to declare. If a
# check ever has to be skipped, list it here with the reason (docs/probes.md repeats the list).
EXPECTED_FAILED: dict[str, str] = {}


@parametrize_with_checks(
    [RidgeProbe(), LogisticProbe(), MeanDiffProbe()],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_check_estimator(estimator, check) -> None:
    check(estimator)


def _blobs(n: int, d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = rng.normal(size=(k, d))
    return rng.normal(size=(n, d)) * 1.5 + centres[y] + 4.0, y


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("c", [0.05, 1.0, 20.0])
def test_logistic_probe_equals_sklearn(k: int, c: float) -> None:
    x, y = _blobs(300, 10, k, seed=k)
    tr, te = np.arange(300) < 200, np.arange(300) >= 200
    ours = LogisticProbe(C=c, tol=1e-8).fit(x[tr], y[tr])
    ref = LogisticRegression(C=c, tol=1e-10, max_iter=10000).fit(x[tr], y[tr])
    agree = (ours.predict(x[te]) == ref.predict(x[te])).mean()
    assert agree >= 0.99
    np.testing.assert_allclose(ours.predict_proba(x[te]), ref.predict_proba(x[te]), atol=1e-4)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4 * max(1, np.abs(ref.coef_).max()))
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-3)
    assert ours.score(x[te], y[te]) == ref.score(x[te], y[te]) or agree < 1


def test_mean_diff_probe_equals_numpy() -> None:
    x, y = _blobs(100, 6, 2, seed=9)
    labels = np.array(["no", "yes"])[y]
    probe = MeanDiffProbe().fit(x, labels)
    m0, m1 = x[y == 0].mean(0), x[y == 1].mean(0)
    np.testing.assert_allclose(probe.coef_[0], m1 - m0)
    score = (x - (m0 + m1) / 2) @ (m1 - m0)
    np.testing.assert_allclose(probe.decision_function(x), score)
    np.testing.assert_array_equal(probe.predict(x), np.where(score > 0, "yes", "no"))


def test_ridge_probe_sklearn_contract() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 5))
    y = x @ rng.normal(size=5) + rng.normal(size=80) * 0.1
    probe = RidgeProbe(alphas=(0.1, 1.0), cv=4, random_state=3)
    with pytest.raises(NotFittedError):
        probe.predict(x)
    assert clone(probe).get_params() == probe.get_params()
    assert probe.set_params(cv=3).cv == 3
    fitted = probe.fit(x, y)
    assert fitted.n_features_in_ == 5
    # The grid searched (alphas_) may extend the one given at an edge: score is the chosen one's.
    assert set(fitted.alphas) <= set(fitted.alphas_)
    np.testing.assert_allclose(
        fitted.score(x, y), fitted.train_r2_[list(fitted.alphas_).index(fitted.alpha_)]
    )
    with pytest.raises(ValueError, match="features"):
        fitted.predict(x[:, :4])
    pipe = make_pipeline(StandardScaler(), RidgeProbe(alphas=(1.0,), cv=3))
    scores = cross_val_score(pipe, x, y, cv=KFold(4, shuffle=True, random_state=0))
    assert scores.shape == (4,) and np.all(scores > 0.9)
    grid = GridSearchCV(RidgeProbe(cv=3), {"alphas": [(0.01,), (100.0,)]}, cv=3).fit(x, y)
    assert grid.best_params_ == {"alphas": (0.01,)}
    with pytest.raises(TypeError):
        RidgeProbe(seed=1)  # renamed random_state, as in scikit-learn


def test_classifier_probes_in_pipelines() -> None:
    x, y = _blobs(120, 4, 3, seed=1)
    pipe = make_pipeline(StandardScaler(), LogisticProbe())
    ref = make_pipeline(StandardScaler(), LogisticRegression())
    ours, want = cross_val_score(pipe, x, y, cv=3), cross_val_score(ref, x, y, cv=3)
    np.testing.assert_allclose(ours, want, atol=1 / 40 + 1e-9)  # at most one sample in 40
    grid = GridSearchCV(LogisticProbe(), {"C": [1e-4, 1.0]}, cv=3).fit(x, y)
    assert grid.best_params_ == {"C": 1.0}
    xb, yb = _blobs(120, 4, 2, seed=2)
    assert cross_val_score(MeanDiffProbe(), xb, yb, cv=3).mean() > 0.6  # planted: above chance
    with pytest.raises(NotFittedError):
        MeanDiffProbe().decision_function(xb)


_BAD_PARAMS = [
    (RidgeProbe, {"standardize": "no"}, "expected standardize True or False, got 'no'"),
    (RidgeProbe, {"standardize": 1.0}, "expected standardize True or False, got 1.0"),
    (RidgeProbe, {"cv": "3"}, "expected cv >= 2 folds, got '3'"),
    (RidgeProbe, {"cv": True}, "expected cv >= 2 folds, got True"),
    (LogisticProbe, {"max_iter": 0}, "expected max_iter a whole number >= 1, got 0"),
    (LogisticProbe, {"max_iter": 2.5}, "expected max_iter a whole number >= 1, got 2.5"),
    (LogisticProbe, {"tol": -1.0}, "expected tol a finite number > 0, got -1.0"),
    (LogisticProbe, {"tol": float("nan")}, "expected tol a finite number > 0, got nan"),
    (LogisticProbe, {"C": np.inf}, "expected C a finite number > 0, got inf"),
    (LogisticProbe, {"C": True}, "expected C a finite number > 0, got True"),
]


@pytest.mark.parametrize(("cls", "params", "match"), _BAD_PARAMS)
def test_bad_hyperparameters_are_refused_at_fit(cls, params, match) -> None:
    """breaker12: ``standardize="no"`` standardised (``bool("no")`` is True), ``max_iter=0`` and
    ``tol=-1`` fitted silently, ``cv="3"`` raised a bare TypeError."""
    from actstore.errors import InvalidArgumentError

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    y = (x[:, 0] > 0).astype(int) if cls is LogisticProbe else x[:, 0] + 0.1 * rng.normal(size=30)
    est = cls(**params)  # scikit-learn's rule: __init__ stores, fit validates
    with pytest.raises(InvalidArgumentError, match=match.replace("(", r"\(").replace(")", r"\)")):
        est.fit(x, y)


def test_fit_probes_refuses_a_non_bool_standardize() -> None:
    from actstore.analysis import fit_probes
    from actstore.errors import InvalidArgumentError
    from tests._fixtures.analysis import random_set

    ds = random_set(n=20, d_model=3)
    with pytest.raises(InvalidArgumentError, match="expected standardize True or False, got 'no'"):
        fit_probes(ds, prompt_set="s", target="value", standardize="no")
    with pytest.raises(InvalidArgumentError, match="expected cv >= 2 folds, got '3'"):
        fit_probes(ds, prompt_set="s", target="value", cv="3")
    with pytest.raises(InvalidArgumentError, match=r"expected seed a whole number >= 0, got 1\.5"):
        fit_probes(ds, prompt_set="s", target="value", seed=1.5)
    with pytest.raises(InvalidArgumentError, match="expected max_memory a whole number >= 1"):
        fit_probes(ds, prompt_set="s", target="value", max_memory="1GB")


@pytest.mark.parametrize("seed", ["a", -1, 1.5])
def test_detect_refuses_a_bad_seed(seed) -> None:
    """breaker12: a bad ``seed`` reached numpy (TypeError/ValueError about SeedSequence)."""
    from actstore.analysis import detect, fit_probes
    from actstore.errors import InvalidArgumentError
    from tests._fixtures.analysis import planted_set

    kw = {"d_model": 4, "n_tokens_max": 10, "layers": (3,), "signal_layer": 3}
    train = planted_set(n_prompts=20, kind="train", **kw)
    test = planted_set(n_prompts=10, kind="test", seed=5, **kw)
    probes = fit_probes(train, prompt_set="a", target="value", alphas=[1.0], cv=3)
    with pytest.raises(InvalidArgumentError, match="expected seed a whole number >= 0"):
        detect(test, probes, prompt_set="b", target="v_squared", write=False, seed=seed)
