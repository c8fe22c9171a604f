"""Exact checks that loose thresholds missed: folds over prompts, probes on a layer subset.

Each test compares with an independent reference (scikit-learn on the same rows with its own
``KFold`` over prompts; numpy on the activations read back) to 1e-6, so a fold drawn per token or a
prediction written under the wrong layer changes the compared numbers, not a threshold.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, PredefinedSplit, cross_val_score

import actstore
from actstore.analysis import detect, fit_probes
from tests._fixtures.analysis import planted_set, random_set, write_set

ALPHAS = [0.1, 10.0]


def _rows_all_positions(ds, layer_pos: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every real token of every prompt: rows (sample, d), label (sample,), prompt (sample,)."""
    acts = ds["resid_post"].values
    n_tokens = ds["n_tokens"].values
    label = ds["value"].values
    prompt = np.concatenate([np.full(int(n), p) for p, n in enumerate(n_tokens)])
    token = np.concatenate([np.arange(int(n)) for n in n_tokens])
    x = acts[prompt, layer_pos, token].astype(np.float64)
    return x, label[prompt], prompt


def _prompt_folds(n_prompts: int, k: int, seed: int, prompt: np.ndarray) -> np.ndarray:
    """scikit-learn's own ``KFold(shuffle=True)`` over prompts, spread to each prompt's tokens."""
    fold_of_prompt = np.empty(n_prompts, dtype=np.int64)
    for f, (_, test) in enumerate(
        KFold(k, shuffle=True, random_state=seed).split(np.arange(n_prompts))
    ):
        fold_of_prompt[test] = f
    return fold_of_prompt[prompt]


@pytest.mark.parametrize(
    ("kind", "solver"),
    [("planted", "primal"), ("random", "dual")],
    ids=["primal", "dual"],
)
def test_all_positions_cv_equals_sklearn_with_prompt_folds(kind: str, solver: str) -> None:
    """position="all": held-out R² per fold equals sklearn with folds drawn over prompts.

    A per-prompt label on every token: a fold drawn per token puts tokens of one prompt on both
    sides of the split, and the held-out R² jumps (0.41 instead of -1.78 in issue 10).
    """
    if kind == "planted":
        ds = planted_set(n_prompts=60, kind="train", seed=11, d_model=16)
        layer = 15
    else:
        ds = random_set(n=12, d_model=64, n_layers=2, n_tokens_max=4, seed=3)
        layer = int(ds["layer"].values[1])
    seed, k = 7, 4
    probes = fit_probes(
        ds,
        prompt_set="arithmetic",
        target="value",
        position="all",
        layers=[layer],
        alphas=ALPHAS,
        cv=k,
        seed=seed,
        control="none",
        solver=solver,
    )
    assert probes.lineage["solver"] == solver
    layer_pos = [int(v) for v in ds["layer"].values].index(layer)
    x, y, prompt = _rows_all_positions(ds, layer_pos)
    assert probes.lineage["n_samples"] == len(y)
    split = PredefinedSplit(_prompt_folds(ds.sizes["prompt"], k, seed, prompt))
    # The grid may have been extended at an edge: compare on the grid that was searched.
    grid = list(probes.dataset["alpha_values"].values[0])
    assert set(ALPHAS) <= set(grid)
    for j, alpha in enumerate(grid):
        per_fold = cross_val_score(Ridge(alpha=alpha), x, y, cv=split)
        np.testing.assert_allclose(
            probes.dataset["cv_r2_fold"].values[:, 0, j], per_fold, rtol=0, atol=1e-6
        )
        np.testing.assert_allclose(probes.dataset["cv_r2"].values[0, j], per_fold.mean(), atol=1e-6)
        mae = -cross_val_score(
            Ridge(alpha=alpha), x, y, cv=split, scoring="neg_mean_absolute_error"
        )
        np.testing.assert_allclose(probes.dataset["cv_mae"].values[0, j], mae.mean(), rtol=1e-6)
    best = grid[int(np.argmax(probes.dataset["cv_r2"].values[0]))]
    assert probes.dataset["alpha"].values[0] == best
    ref = Ridge(alpha=best).fit(x, y)
    np.testing.assert_allclose(
        probes.dataset["coef"].values[0], ref.coef_, atol=1e-6 * max(1.0, np.abs(ref.coef_).max())
    )
    assert probes.dataset["intercept"].values[0] == pytest.approx(
        ref.intercept_, rel=1e-6, abs=1e-6
    )
    np.testing.assert_allclose(
        probes.dataset["train_r2"].values[0, grid.index(best)],
        ref.score(x, y),
        atol=1e-6,
    )


def test_shuffled_control_permutes_labels_across_prompts() -> None:
    """The control's labels are a permutation over prompts (every token of a prompt shares one)."""
    ds = planted_set(n_prompts=40, kind="train", seed=4, d_model=8)
    probes = fit_probes(
        ds, prompt_set="arithmetic", target="value", position="all", layers=[15], seed=3, cv=4,
        alphas=[1.0],  # one alpha: no search (the labels are the subject here)
    )  # fmt: skip
    x, _, prompt = _rows_all_positions(ds, 2)
    labels = ds["value"].values
    perm = np.random.default_rng(3).permutation(len(labels))
    y_ctrl = labels[perm][prompt]
    split = PredefinedSplit(_prompt_folds(len(labels), 4, 3, prompt))
    per_fold = cross_val_score(Ridge(alpha=1.0), x, y_ctrl, cv=split)
    np.testing.assert_allclose(
        probes.dataset["control_cv_r2_fold"].values[:, 0, 0], per_fold, atol=1e-6
    )
    ref = Ridge(alpha=1.0).fit(x, y_ctrl)
    np.testing.assert_allclose(probes.dataset["control_coef"].values[0], ref.coef_, atol=1e-6)


@pytest.fixture(scope="module")
def subset_cache(tmp_path_factory):
    """A 4-layer cache (layers 3, 9, 15, 21) with a training and a detection prompt set."""
    url = tmp_path_factory.mktemp("subset") / "c.zarr"
    write_set(url, "arithmetic", planted_set(n_prompts=50, kind="train", seed=8, d_model=16))
    write_set(url, "physics", planted_set(n_prompts=30, kind="test", seed=9, d_model=16))
    return url


def test_detect_with_probes_on_a_layer_subset_writes_each_layer_in_place(subset_cache) -> None:
    """Probes fitted on layers [15, 3] (out of order, 2 of 4): every written layer is its own."""
    probes = fit_probes(
        subset_cache, prompt_set="arithmetic", target="value", layers=[15, 3], alphas=[0.1, 1.0]
    )
    assert probes.layers == [15, 3]
    before = set(actstore.open(subset_cache, "physics").data_vars)
    res = detect(subset_cache, probes, prompt_set="physics", target="v_squared", name="sub_pred")
    ds = actstore.open(subset_cache, "physics")
    stored_layers = [int(v) for v in ds["layer"].values]
    n_tokens = ds["n_tokens"].values
    real = np.arange(ds.sizes["token"])[None, :] < n_tokens[:, None]  # (prompt, token)
    acts = ds["resid_post"].values.astype(np.float64)  # (prompt, layer, token, d)

    def reference(control: bool) -> dict[int, np.ndarray]:
        coef, icept = probes.weights(control=control)  # rows in probes.layers order
        out = {}
        for i, layer in enumerate(probes.layers):
            x = acts[:, stored_layers.index(layer)]
            pred = x @ coef[i] + icept[i]
            out[layer] = np.where(real, pred, np.nan)
        return out

    refs = {False: reference(False), True: reference(True)}
    # In-memory predictions, by layer label.
    for layer in probes.layers:
        np.testing.assert_allclose(
            res.predictions.sel(layer=layer, probe="fit").values,
            refs[False][layer],
            rtol=1e-5,
            atol=1e-3,
        )
        np.testing.assert_allclose(
            res.predictions.sel(layer=layer, probe="control").values,
            refs[True][layer],
            rtol=1e-5,
            atol=1e-3,
        )
    # Written back: whatever the variables are called, each holds one probe's predictions at the
    # probes' layers (each under its own label) and NaN at the two layers without a probe.
    new = sorted(set(ds.data_vars) - before)
    assert new, "detect wrote nothing back"
    matched = set()
    for name in new:
        var = ds[name]
        assert var.dims == ("prompt", "layer", "token")
        for layer in (9, 21):
            assert np.isnan(var.sel(layer=layer).values).all()
        for control in (False, True):
            if all(
                np.allclose(
                    var.sel(layer=la).values,
                    refs[control][la],
                    rtol=1e-5,
                    atol=1e-3,
                    equal_nan=True,
                )
                for la in probes.layers
            ):
                matched.add(control)
                break
        else:
            pytest.fail(f"{name}: no layer-wise match with the probe or its control")
    assert matched == {False, True}
    # statistics are labelled by the probes' layers too
    st = res.stats.sel(control="probe")
    for layer in probes.layers:
        err = np.abs(refs[False][layer] - ds["v_squared"].values[:, None])
        np.testing.assert_allclose(
            st["best_error"].sel(layer=layer).values, np.nanmin(err, axis=1), rtol=1e-4, atol=1e-2
        )
