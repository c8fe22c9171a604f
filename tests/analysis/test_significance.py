"""Permutation p-values of detection (issue 12): against a brute-force scikit-learn reference, a
planted signal, and uniform p-values (KS test) where nothing is planted."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_score

from actstore.analysis import detect, fit_probes
from actstore.analysis._significance import holm, permutation_p
from actstore.errors import InvalidArgumentError, UndefinedMetricWarning
from tests._fixtures.analysis import planted_set


def _holm_loop(p: list[float]) -> list[float]:
    """Holm-Bonferroni from its definition: adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def _ridge(alpha: float) -> Ridge:
    return Ridge(alpha=alpha)


def _assert_null_shuffled_equals_refits(res, probes, train, test, seed, n_perm, folds, model):
    """The detection's shuffled-label null statistics equal brute-force scikit-learn refits: the
    same permutations of the training labels (generator ``[seed, 1]``), each probe ``model(alpha)``
    chosen by CV over ``folds`` on the probe's per-layer grid, applied at every real test token."""
    y = train["value"].values
    n = len(y)
    last = train["n_tokens"].values - 1
    rng = np.random.default_rng([seed, 1])
    perms = [rng.permutation(n) for _ in range(n_perm)]
    target, n_tok = test["v_squared"].values, test["n_tokens"].values
    for i in range(len(probes.layers)):
        x = train["resid_post"].values[np.arange(n), i, last].astype(np.float64)
        alphas = probes.dataset["alpha_values"].values[i]
        acts = test["resid_post"].values[:, i].astype(np.float64)
        for j, perm in enumerate(perms):
            yp = y[perm]
            scores = [cross_val_score(model(a), x, yp, cv=folds).mean() for a in alphas]
            fitted = model(alphas[int(np.argmax(scores))]).fit(x, yp)
            mins = [
                np.abs(fitted.predict(acts[p, : n_tok[p]]) - target[p]).min()
                for p in range(len(target))
            ]
            got = res.significance["null_shuffled"].values[i, j]
            assert got == pytest.approx(np.mean(mins), rel=1e-5, abs=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_holm_and_permutation_p_against_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=7) ** 3
    np.testing.assert_allclose(holm(p), _holm_loop(list(p)), rtol=0, atol=1e-15)
    obs = rng.normal(size=4)
    null = rng.normal(size=(4, 30))
    ref = [(1 + sum(v <= obs[i] for v in null[i])) / 31 for i in range(4)]
    np.testing.assert_allclose(permutation_p(obs, null), ref, rtol=0, atol=0)


def _pair(seed: int, *, signal: bool, n_train: int = 40, n_test: int = 24, d: int = 8):
    layers = (3, 9)
    train = planted_set(
        n_prompts=n_train,
        kind="train",
        d_model=d,
        n_tokens_max=10,
        layers=layers,
        signal_layer=9,
        seed=seed,
    )
    test = planted_set(
        n_prompts=n_test,
        kind="test",
        d_model=d,
        n_tokens_max=10,
        layers=layers,
        signal_layer=9,
        seed=seed + 1000,
    )
    if not signal:  # labels independent of the activations
        labels = np.random.default_rng(seed + 7).uniform(4, 361, size=n_train)
        train["value"] = ("prompt", labels)
    return train, test


def test_null_statistics_equal_a_brute_force_sklearn_refit() -> None:
    train, test = _pair(3, signal=True)
    grid = [0.1, 1.0, 10.0]
    probes = fit_probes(train, prompt_set="a", target="value", alphas=grid, cv=3, seed=4)
    n_perm = 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        res = detect(
            test,
            probes,
            prompt_set="b",
            target="v_squared",
            write=False,
            train=train,
            permutations=n_perm,
            seed=11,
        )
    # Reference: the same permutations, each probe chosen by KFold CV over the same grid with
    # sklearn's Ridge, applied at every real token of the test set.
    folds = KFold(3, shuffle=True, random_state=4)
    _assert_null_shuffled_equals_refits(res, probes, train, test, 11, n_perm, folds, _ridge)
    target = test["v_squared"].values
    # Random targets: uniform between the smallest and largest target, same generator.
    rng_r = np.random.default_rng([11, 2])
    pred = res.predictions.sel(probe="fit").values  # (prompt, layer, token)
    for j in range(n_perm):
        y_r = rng_r.uniform(target.min(), target.max(), size=len(target))
        ref = np.nanmean(np.nanmin(np.abs(pred - y_r[:, None, None]), axis=2), axis=0)
        np.testing.assert_allclose(res.significance["null_random"].values[:, j], ref, rtol=1e-6)


def test_planted_signal_has_p_below_001_and_is_reported(tmp_path) -> None:
    train, test = _pair(1, signal=True)
    probes = fit_probes(train, prompt_set="a", target="value", cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        res = detect(
            test,
            probes,
            prompt_set="b",
            target="v_squared",
            write=False,
            train=train,
            permutations=199,
        )
    rows = {r["layer"]: r for r in res.summary()}
    assert rows[9]["p_value"] < 0.01 and rows[9]["p_value_corrected"] < 0.05
    assert rows[9]["p_value_random_target"] < 0.01 and rows[9]["beats_chance"]
    assert not rows[3]["beats_chance"]
    text = res.conclusions()
    assert len(text) == 2 and "Layer 9: detection beats chance" in text[1]
    assert "Layer 3: detection does not beat chance" in text[0] and "Holm-Bonferroni" in text[0]
    out = json.loads(json.dumps(res.to_dict(per_prompt=False)))
    assert out["significance"]["correction"] == "Holm-Bonferroni"
    assert out["layers"][1]["p_value"] == rows[9]["p_value"]
    # Reproducible: the same seed gives the same nulls, another seed others.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        again = detect(
            test,
            probes,
            prompt_set="b",
            target="v_squared",
            write=False,
            train=train,
            permutations=199,
        )
    assert np.array_equal(again.significance["null_shuffled"], res.significance["null_shuffled"])


def test_p_values_are_uniform_without_a_signal() -> None:
    # One layer per seed (the nulls of one training set are dependent across its layers); a fixed
    # alpha makes the real probe exchangeable with the shuffled ones. Seeded: cannot flake.
    p_values = []
    for seed in range(40):
        train, test = _pair(seed, signal=False, n_train=24, n_test=12, d=5)
        train, test = train.isel(layer=[0]), test.isel(layer=[0])
        probes = fit_probes(train, prompt_set="a", target="value", cv=3, alphas=1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            res = detect(
                test,
                probes,
                prompt_set="b",
                target="v_squared",
                write=False,
                train=train,
                permutations=49,
                seed=seed,
            )
        p_values.append(res.summary()[0]["p_value"])
    p = np.array(p_values)
    assert stats.kstest(p, "uniform").pvalue > 0.01, np.sort(p)
    assert (p < 0.01).sum() == 0  # 1/50 is the smallest possible value; none that small by luck


def test_missing_training_set_warns_and_gives_random_target_p(planted_pair) -> None:
    train, test = planted_pair
    probes = fit_probes(train, prompt_set="a", target="value", cv=3, alphas=1.0)
    with pytest.warns(UndefinedMetricWarning, match="pass train="):
        res = detect(test, probes, prompt_set="b", target="v_squared", write=False, permutations=9)
    row = res.summary()[0]
    assert np.isnan(row["p_value"]) and 0 < row["p_value_random_target"] <= 1


def test_too_few_permutations_for_the_layers_warns(planted_pair) -> None:
    train, test = planted_pair
    probes = fit_probes(train, prompt_set="a", target="value", cv=3, alphas=1.0)
    with pytest.warns(UndefinedMetricWarning, match=r"permutations >= 80"):
        detect(
            test,
            probes,
            prompt_set="b",
            target="v_squared",
            write=False,
            train=train,
            permutations=20,
        )


@pytest.mark.parametrize("bad", [-1, 2.5, True, "10"])
def test_bad_permutations_refused(planted_pair, bad) -> None:
    train, test = planted_pair
    probes = fit_probes(train, prompt_set="a", target="value", cv=3, alphas=1.0)
    with pytest.raises(InvalidArgumentError, match="expected permutations a whole number"):
        detect(test, probes, prompt_set="b", target="v_squared", write=False, permutations=bad)


def test_zero_permutations_skips_significance(planted_pair) -> None:
    train, test = planted_pair
    probes = fit_probes(train, prompt_set="a", target="value", cv=3, alphas=1.0)
    res = detect(test, probes, prompt_set="b", target="v_squared", write=False, permutations=0)
    assert res.significance is None and "p_value" not in res.summary()[0]
    assert res.conclusions() == []


def test_null_probes_use_the_probes_grouped_folds() -> None:
    """Probes fitted with ``group_by``: each shuffled-label probe chooses its alpha with the same
    grouped folds (scikit-learn ``GroupKFold(shuffle=True)``), as a brute-force refit does."""
    from sklearn.model_selection import GroupKFold

    train, test = _pair(5, signal=True, n_train=36)
    n = train.sizes["prompt"]
    groups = np.arange(n) % 9  # 9 templates, 4 prompts each
    train["template"] = ("prompt", np.array([f"t{g}" for g in groups]))
    grid = [1e-3, 0.1, 10.0, 1e3]
    probes = fit_probes(
        train, prompt_set="a", target="value", alphas=grid, cv=3, seed=2, group_by="template"
    )
    n_perm = 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        res = detect(
            test, probes, prompt_set="b", target="v_squared", write=False, train=train,
            permutations=n_perm, seed=3,
        )  # fmt: skip
    labels = np.array([f"t{g}" for g in groups])
    folds = list(GroupKFold(3, shuffle=True, random_state=2).split(np.zeros(n), groups=labels))
    _assert_null_shuffled_equals_refits(res, probes, train, test, 3, n_perm, folds, _ridge)


def test_null_statistics_with_standardize_and_auto_grid_equal_sklearn_pipeline() -> None:
    """breaker12: the shuffled-label refits of a ``standardize=True`` probe with the default
    (data-relative, possibly extended) grid equal ``make_pipeline(StandardScaler(), Ridge)``
    chosen by KFold CV over the probe's final per-layer alphas, on columns 100x apart."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = _pair(5, signal=True)
    col = np.ones(train.sizes["d_model"], np.float32)
    col[0], col[1] = 100.0, 0.01
    for ds in (train, test):
        ds["resid_post"] = ds["resid_post"] * col
    probes = fit_probes(train, prompt_set="a", target="value", cv=3, seed=4, standardize=True)
    n_perm = 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        res = detect(
            test, probes, prompt_set="b", target="v_squared", write=False, train=train,
            permutations=n_perm, seed=11,
        )  # fmt: skip
    folds = KFold(3, shuffle=True, random_state=4)

    def pipe(a: float):
        return make_pipeline(StandardScaler(), Ridge(alpha=a))

    _assert_null_shuffled_equals_refits(res, probes, train, test, 11, n_perm, folds, pipe)
