"""fit_probes from real caches against scikit-learn on the same rows; lineage; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_score

from actstore.analysis import fit_probes
from actstore.errors import IncompleteCacheError, InvalidArgumentError, UnknownNameError
from tests._fixtures.analysis import planted_set, random_set, write_set

ALPHAS = [0.1, 3.0]


@pytest.mark.parametrize(("n", "d"), [(90, 12), (30, 64)], ids=["n>d", "n<d"])
def test_fit_from_cache_equals_sklearn_on_last_tokens(tmp_path, n: int, d: int) -> None:
    ds = random_set(n=n, d_model=d, n_layers=2, seed=4)
    ds = ds.assign(
        text=("prompt", np.array([f"p{i}" for i in range(n)])),
        token_id=(("prompt", "token"), np.ones((n, ds.sizes["token"]), np.int32)),
        token_str=(("prompt", "token"), np.full((n, ds.sizes["token"]), "x")),
    )
    ds.attrs["actstore"] = {"fingerprint": {"model": "m"}}
    cache = write_set(tmp_path / "c.zarr", "arithmetic", ds, block_size=7)
    probes = fit_probes(cache, prompt_set="arithmetic", target="value", alphas=ALPHAS, seed=2)
    acts = ds["resid_post"].values
    last = ds["n_tokens"].values - 1
    y = ds["value"].values
    folds = KFold(5, shuffle=True, random_state=2)
    for i, layer in enumerate(probes.layers):
        x = acts[np.arange(n), i, last].astype(np.float64)
        # The grid may have been extended at an edge: compare on the grid that was searched.
        grid = probes.dataset["alpha_values"].values[i]
        assert set(ALPHAS) <= set(grid)
        r2 = [cross_val_score(Ridge(alpha=a), x, y, cv=folds).mean() for a in grid]
        np.testing.assert_allclose(probes.dataset["cv_r2"].values[i], r2, atol=1e-6)
        for j, a in enumerate(grid):
            per_fold = cross_val_score(Ridge(alpha=a), x, y, cv=folds)
            np.testing.assert_allclose(
                probes.dataset["cv_r2_fold"].values[:, i, j], per_fold, atol=1e-6
            )
        best = grid[int(np.argmax(r2))]
        assert probes.dataset["alpha"].values[i] == best
        ref = Ridge(alpha=best).fit(x, y)
        coef = probes.dataset["coef"].values[i]
        assert np.abs(coef - ref.coef_).max() <= 1e-6 * np.abs(ref.coef_).max()
        assert probes.dataset["intercept"].values[i] == pytest.approx(ref.intercept_, rel=1e-6)
        assert layer == int(ds["layer"].values[i])


def test_metrics_and_shuffled_control(planted_cache) -> None:
    probes = fit_probes(
        planted_cache, prompt_set="arithmetic", target="value", alphas=[0.1, 1.0, 10.0]
    )
    rows = {r["layer"]: r for r in probes.metrics()}
    assert rows[15]["cv_r2"] > 0.99
    assert rows[15]["train_r2"] >= rows[15]["cv_r2"] - 1e-9
    assert rows[15]["control_cv_r2"] < 0.1  # the control sees no signal
    for layer in (3, 9, 21):
        assert rows[layer]["cv_r2"] < 0.1
    lin = probes.lineage
    assert lin["prompt_set"] == "arithmetic" and lin["target"] == "value"
    assert lin["position"] == "last" and lin["layers"] == [3, 9, 15, 21]
    assert lin["model_fingerprint"] == "synthetic-model" and len(lin["cache_fingerprint"]) == 16
    out = probes.to_dict()
    assert set(out["cv_r2_by_alpha"]) == {"3", "9", "15", "21"}


def test_all_positions_fold_by_prompt(planted_pair) -> None:
    train, _ = planted_pair
    probes = fit_probes(train, prompt_set="arithmetic", target="value", position="all", layers=[15])
    n_samples = int(train["n_tokens"].sum())
    assert probes.lineage["n_samples"] == n_samples
    assert probes.lineage["n_prompts"] == train.sizes["prompt"]
    # Every token is labelled with its prompt's value but only the last one carries it: weak fit.
    assert probes.metrics()[0]["cv_r2"] < 0.5


def test_span_position_and_layer_subset(planted_pair) -> None:
    train, _ = planted_pair
    probes = fit_probes(
        train, prompt_set="arithmetic", target="value", position="span:answer", layers=[15, 3]
    )
    assert probes.layers == [15, 3]
    assert probes.metrics()[0]["cv_r2"] > 0.99


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target": "nope"}, UnknownNameError, "expected a label column"),
        ({"target": "value", "layers": [4]}, UnknownNameError, "expected layers among"),
        ({"target": "value", "position": "span:nope"}, UnknownNameError, "expected a span"),
        ({"target": "value", "alphas": [0]}, InvalidArgumentError, "alphas"),
        ({"target": "value", "control": "x"}, InvalidArgumentError, "control"),
        ({"target": "value", "solver": "x"}, InvalidArgumentError, "solver"),
        ({"target": "value", "hook": "resid_mid"}, UnknownNameError, "resid_mid"),
    ],
)
def test_bad_input_is_refused(planted_pair, kwargs, error, match) -> None:
    train, _ = planted_pair
    with pytest.raises(error, match=match):
        fit_probes(train, prompt_set="arithmetic", **kwargs)


def test_unknown_prompt_set_in_cache(planted_cache) -> None:
    with pytest.raises(UnknownNameError, match="expected a prompt set"):
        fit_probes(planted_cache, prompt_set="nope", target="value")


def test_bfloat16_cache_reads_exactly(tmp_path) -> None:
    from actstore.store import numpy_dtype

    ds = planted_set(n_prompts=40, kind="train", seed=5, d_model=16)
    write_set(tmp_path / "bf16.zarr", "arithmetic", ds, dtype="bfloat16")
    a = fit_probes(tmp_path / "bf16.zarr", prompt_set="arithmetic", target="value")
    rounded = ds.assign(
        resid_post=ds["resid_post"].astype(numpy_dtype("bfloat16")).astype(np.float32)
    )
    b = fit_probes(rounded, prompt_set="arithmetic", target="value")
    np.testing.assert_allclose(a.dataset["coef"].values, b.dataset["coef"].values, rtol=1e-9)


def test_incomplete_prompt_set_is_refused(tmp_path) -> None:
    ds = planted_set(n_prompts=40, kind="train", seed=5, d_model=8)
    cache = write_set(tmp_path / "c.zarr", "arithmetic", ds, block_size=10)
    # Simulate a killed extraction: forget one block's completion record.
    from actstore.store.format._schema import DONE_ARRAY

    cache.group("arithmetic")[DONE_ARRAY][2] = 0
    with pytest.raises(IncompleteCacheError, match="resume the extraction"):
        fit_probes(tmp_path / "c.zarr", prompt_set="arithmetic", target="value")


def test_before_span_position(planted_pair) -> None:
    train, _ = planted_pair
    probes = fit_probes(
        train, prompt_set="arithmetic", target="value", position="before:answer", layers=[15]
    )
    assert probes.lineage["n_samples"] == train.sizes["prompt"]
    # The value is planted at the answer token, not before it.
    assert probes.metrics()[0]["cv_r2"] < 0.5
