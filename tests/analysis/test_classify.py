"""Classification probes from real caches against scikit-learn and numpy on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from actstore.analysis import detect, fit_probes, load_probes, save_probes
from actstore.analysis._class_metrics import fold_metrics
from actstore.analysis._ridge import kfold_assign
from actstore.errors import InvalidArgumentError, UnknownNameError
from tests.analysis._class_data import class_cache, class_set, last_rows

ALPHAS = [0.5, 4.0]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """scikit-learn's lbfgs (the reference) slows down ~50x when BLAS threads contend."""
    with threadpool_limits(1, user_api="blas"):
        yield


def _sk(alpha: float) -> LogisticRegression:
    return LogisticRegression(C=1.0 / alpha, tol=1e-10, max_iter=10000)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_from_cache_equals_sklearn(tmp_path, n_classes: int) -> None:
    ds = class_set(n=150, n_classes=n_classes, seed=n_classes)
    cache = class_cache(tmp_path / "c.zarr", ds)
    probes = fit_probes(
        cache, prompt_set="ops", target="word", kind="logistic", alphas=ALPHAS, seed=3
    )
    out = probes.dataset
    labels = ds["word"].values
    assert list(out["class"].values) == sorted(set(labels))
    fold = kfold_assign(150, 5, 3)
    for i in range(len(probes.layers)):
        x = last_rows(ds, i)
        for j, a in enumerate(ALPHAS):
            for f in range(5):
                tr, te = fold != f, fold == f
                sk = _sk(a).fit(x[tr], labels[tr])
                proba = sk.predict_proba(x[te])
                ours = out["cv_log_loss_fold"].values[f, i, j]
                np.testing.assert_allclose(ours, log_loss(labels[te], proba), rtol=1e-4, atol=1e-5)
                acc = accuracy_score(labels[te], sk.predict(x[te]))
                assert abs(out["cv_accuracy_fold"].values[f, i, j] - acc) <= 1 / te.sum() + 1e-12
        # The chosen alpha has the lowest mean held-out log-loss; its refit matches sklearn.
        best = int(np.argmin(out["cv_log_loss"].values[i]))
        assert out["alpha"].values[i] == ALPHAS[best]
        sk = _sk(ALPHAS[best]).fit(x, labels)
        coef = out["coef"].values[i]
        z = x @ coef.T + out["intercept"].values[i]
        np.testing.assert_allclose(z, sk.decision_function(x).reshape(z.shape), atol=1e-4)
    assert probes.has_control
    m = probes.metrics()[0]
    assert m["cv_accuracy"] > m["control_cv_accuracy"] + 0.2
    assert m["cv_roc_auc"] > 0.9


def test_mean_diff_from_cache_equals_numpy(tmp_path) -> None:
    ds = class_set(n=120, n_classes=2, seed=5)
    cache = class_cache(tmp_path / "c.zarr", ds)
    probes = fit_probes(cache, prompt_set="ops", target="label", kind="mean_diff", seed=1)
    out = probes.dataset
    y = ds["label"].values
    fold = kfold_assign(120, 5, 1)
    for i in range(len(probes.layers)):
        x = last_rows(ds, i)
        direction = x[y == 1].mean(0) - x[y == 0].mean(0)
        mid = (x[y == 1].mean(0) + x[y == 0].mean(0)) / 2
        np.testing.assert_allclose(out["coef"].values[i, 0], direction, atol=1e-10)
        np.testing.assert_allclose(out["intercept"].values[i, 0], -direction @ mid, atol=1e-9)
        for f in range(5):
            tr, te = fold != f, fold == f
            d = x[tr & (y == 1)].mean(0) - x[tr & (y == 0)].mean(0)
            c = (x[tr & (y == 1)].mean(0) + x[tr & (y == 0)].mean(0)) / 2
            score = (x[te] - c) @ d
            pred = (score > 0).astype(int)
            got = {k: out[f"cv_{k}_fold"].values[f, i, 0] for k in ("accuracy", "roc_auc")}
            np.testing.assert_allclose(got["accuracy"], accuracy_score(y[te], pred))
            np.testing.assert_allclose(got["roc_auc"], roc_auc_score(y[te], score))
            bal = balanced_accuracy_score(y[te], pred)
            np.testing.assert_allclose(out["cv_balanced_accuracy_fold"].values[f, i, 0], bal)
        assert np.isnan(out["cv_log_loss"].values[i, 0])  # no probabilities: documented NaN


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_fold_metrics_equal_sklearn(n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 60)
    y[:n_classes] = np.arange(n_classes)
    proba = rng.dirichlet(np.ones(n_classes), size=60)
    proba[5] = proba[6]  # ties in the scores
    y[5], y[6] = 0, 1
    pred = np.argmax(proba, axis=1)
    score = proba[:, 1] if n_classes == 2 else proba
    got = fold_metrics(y, pred, score, proba)
    np.testing.assert_allclose(got["accuracy"], accuracy_score(y, pred))
    np.testing.assert_allclose(got["balanced_accuracy"], balanced_accuracy_score(y, pred))
    want_auc = (
        roc_auc_score(y, score, multi_class="ovr") if n_classes > 2 else roc_auc_score(y, score)
    )
    np.testing.assert_allclose(got["roc_auc"], want_auc)
    np.testing.assert_allclose(got["log_loss"], log_loss(y, proba, labels=range(n_classes)))


@pytest.mark.parametrize("kind", ["logistic", "mean_diff"])
def test_class_probes_round_trip_and_detect(tmp_path, kind: str) -> None:
    ds = class_set(n=80, n_classes=2, seed=7)
    cache = class_cache(tmp_path / "c.zarr", ds)
    probes = fit_probes(cache, prompt_set="ops", target="word", kind=kind, alphas=[1.0])
    for dest in (tmp_path / "p.npz", tmp_path / "p.zarr"):
        save_probes(probes, dest)
        back = load_probes(dest)
        assert back.kind == kind
        for a, b in zip(back.metrics(), probes.metrics()):
            np.testing.assert_equal(a, b)
        assert list(back.dataset["class"].values) == list(probes.dataset["class"].values)
    save_probes(probes, cache, name="cls")
    back = load_probes(cache, name="cls")
    np.testing.assert_array_equal(back.dataset["coef"].values, probes.dataset["coef"].values)
    result = detect(cache, back, prompt_set="ops", target="word", write=True)
    pred = result.predictions.sel(probe="fit").values  # (prompt, layer, token)
    coef, icept = probes.dataset["coef"].values, probes.dataset["intercept"].values
    acts = ds["resid_post"].values.astype(np.float64)
    score = np.einsum("pltd,ld->plt", acts, coef[:, 0]) + icept[:, 0][None, :, None]
    if kind == "logistic":
        want = 1 / (1 + np.exp(-score))
    else:
        want = score / (coef[:, 0] ** 2).sum(-1)[None, :, None] + 0.5
        # The class means map to 0 and 1 on this scale.
        x = last_rows(ds, 0)
        y = ds["label"].values
        m1 = x[y == 1].mean(0) @ coef[0, 0] + icept[0, 0]
        np.testing.assert_allclose(m1 / (coef[0, 0] ** 2).sum() + 0.5, 1.0, atol=1e-9)
    real = np.arange(ds.sizes["token"])[None, :] < ds["n_tokens"].values[:, None]
    np.testing.assert_allclose(
        pred[real[:, None, :].repeat(2, 1)],
        want[real[:, None, :].repeat(2, 1)],
        rtol=1e-4,
        atol=1e-5,
    )
    assert np.isnan(pred[~real[:, None, :].repeat(2, 1)]).all()
    # The target is the class index (0 for classes[0]).
    target = result.stats["target"].sel(control="probe").values
    np.testing.assert_array_equal(target, (ds["word"].values == "mul").astype(float))
    rows = result.summary()
    assert len(rows) == 2
    # R² figures refuse a classification probe with a clear message (no KeyError).
    from actstore.analysis import plot_alpha_curves

    with pytest.raises(InvalidArgumentError, match="expected ridge probes"):
        plot_alpha_curves(probes)


def test_group_by_keeps_templates_apart_for_classifiers(tmp_path) -> None:
    from sklearn.model_selection import GroupKFold

    ds = class_set(n=90, n_classes=2, seed=2, n_templates=9)
    cache = class_cache(tmp_path / "c.zarr", ds)
    probes = fit_probes(
        cache, prompt_set="ops", target="label", kind="logistic", alphas=[1.0], seed=4,
        group_by="template", control="none",
    )  # fmt: skip
    x, y, groups = last_rows(ds, 0), ds["label"].values, ds["template"].values
    split = GroupKFold(5, shuffle=True, random_state=4).split(x, y, groups)
    for f, (tr, te) in enumerate(split):
        assert not set(groups[tr]) & set(groups[te])
        sk = _sk(1.0).fit(x[tr], y[tr])
        want = log_loss(y[te], sk.predict_proba(x[te]), labels=[0, 1])
        np.testing.assert_allclose(
            probes.dataset["cv_log_loss_fold"].values[f, 0, 0], want, rtol=1e-4
        )
    assert probes.lineage["group_by"] == "template"


@pytest.mark.parametrize(
    ("kw", "match", "exc"),
    [
        ({"target": "value", "kind": "logistic"}, "categorical", InvalidArgumentError),
        ({"target": "text", "kind": "logistic"}, "at most 50 classes", InvalidArgumentError),
        ({"target": "label", "kind": "mean_diff"}, "2 classes", InvalidArgumentError),
        ({"target": "nope", "kind": "logistic"}, "label column", UnknownNameError),
        ({"target": "label", "kind": "svm"}, "kind in", InvalidArgumentError),
        ({"target": "label", "kind": "logistic", "group_by": "no"}, "group", UnknownNameError),
        ({"target": "label", "kind": "logistic", "max_memory": 99}, "max_memory", ValueError),
    ],
)  # fmt: skip
def test_class_probe_bad_input(tmp_path, kw, match, exc) -> None:
    ds = class_set(n=60, n_classes=3, seed=1)
    cache = class_cache(tmp_path / "c.zarr", ds)
    with pytest.raises(exc, match=match):
        fit_probes(cache, prompt_set="ops", **kw)


def test_class_with_one_prompt_and_multiclass_detect_refused(tmp_path) -> None:
    ds = class_set(n=60, n_classes=3, seed=1)
    label = ds["label"].values.copy()
    label[label == 2] = 1
    label[0] = 2  # class 2 has one prompt
    ds["label"] = ("prompt", label)
    cache = class_cache(tmp_path / "c.zarr", ds)
    with pytest.raises(InvalidArgumentError, match=r"one prompt in class\(es\) 2;"):
        fit_probes(cache, prompt_set="ops", target="label", kind="logistic")
    probes = fit_probes(cache, prompt_set="ops", target="word", kind="logistic", control="none")
    with pytest.raises(InvalidArgumentError, match="binary classification probe"):
        detect(cache, probes, prompt_set="ops", target="word", write=False)


def test_cli_fit_logistic_group_by_and_errors(tmp_path, capsys) -> None:
    import json

    from actstore.cli import main

    ds = class_set(n=60, n_classes=2, seed=3)
    class_cache(tmp_path / "c.zarr", ds)
    c = str(tmp_path / "c.zarr")
    base = ["probe", "fit", c, "--prompt-set", "ops", "--target", "word", "--kind", "logistic"]
    assert main([*base, "--group-by", "template", "--json", "--name", "w"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lineage"]["group_by"] == "template"
    assert out["classes"] == ["add", "mul"]
    assert {"cv_accuracy", "cv_roc_auc", "control_cv_log_loss"} <= set(out["layers"][0])
    assert main(["probe", "show", c, "--name", "w"]) == 0
    shown = capsys.readouterr().out
    assert "logistic probes: classes ['add', 'mul']" in shown and "cv_auc" in shown
    # Bad input: exit 2 and one line, no traceback.
    assert (
        main(["probe", "fit", c, "--prompt-set", "ops", "--target", "value", "--kind", "logistic"])
        == 2
    )
    err = capsys.readouterr().err
    assert "categorical" in err and "Traceback" not in err
    assert main([*base, "--group-by", "nope"]) == 2
    assert "group folds by" in capsys.readouterr().err


def test_all_tokens_and_layer_groups(tmp_path) -> None:
    """position='all': every real token is a sample, folds over prompts; a max_memory that fits
    one layer at a time gives the same probes as one pass for all layers."""
    ds = class_set(n=50, n_classes=2, seed=8)
    cache = class_cache(tmp_path / "c.zarr", ds)
    kw = {"prompt_set": "ops", "target": "label", "kind": "mean_diff", "position": "all"}
    probes = fit_probes(cache, **kw)
    n_tok = ds["n_tokens"].values
    real = np.arange(ds.sizes["token"])[None, :] < n_tok[:, None]
    prompt, token = np.nonzero(real)
    y = ds["label"].values[prompt]
    for i in range(2):
        x = ds["resid_post"].values[prompt, i, token].astype(np.float64)
        want = x[y == 1].mean(0) - x[y == 0].mean(0)
        np.testing.assert_allclose(probes.dataset["coef"].values[i, 0], want, atol=1e-10)
    assert probes.lineage["n_samples"] == real.sum()
    n, d = int(real.sum()), ds.sizes["d_model"]
    one_at_a_time = fit_probes(cache, max_memory=12 * n * d + 4 * n * d - 1, **kw)
    np.testing.assert_array_equal(
        one_at_a_time.dataset["coef"].values, probes.dataset["coef"].values
    )


@pytest.mark.parametrize("kind", ["logistic", "mean_diff"])
def test_fold_with_one_class_warns_like_ridge(tmp_path, kind: str) -> None:
    """breaker12: a held-out fold with one class has no ROC AUC (scikit-learn warns); its NaN
    was averaged out of cv_roc_auc silently, where ridge warns for an undefined fold R²."""
    from actstore.errors import UndefinedMetricWarning

    ds = class_set(n=24, n_classes=2, seed=5)
    cache = class_cache(tmp_path / "c.zarr", ds)
    kw = {"prompt_set": "ops", "target": "label", "kind": kind, "layers": [1], "seed": 0}
    match = r"ROC AUC is undefined in 24 of 24 folds .*for label 'label'"
    with pytest.warns(UndefinedMetricWarning, match=match):
        loo = fit_probes(cache, cv=24, **kw)  # leave-one-out: every held-out fold has one class
    assert np.isnan(loo.metrics()[0]["cv_roc_auc"])
    fold = kfold_assign(24, 24, 0)
    y = ds["label"].values
    with pytest.warns(Warning, match="one class"):  # the reference: NaN with a warning too
        assert np.isnan(roc_auc_score(y[fold == 0], np.zeros(1)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        fit_probes(cache, cv=3, **kw)  # every fold holds both classes: no warning
