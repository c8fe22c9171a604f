"""Grouped folds (``group_by``) against scikit-learn's ``GroupKFold(shuffle=True)``."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold, cross_val_score

from actstore.analysis import fit_probes
from actstore.analysis._folds import group_fold_assign
from actstore.errors import InvalidArgumentError
from tests.analysis._class_data import class_cache, class_set, last_rows


@pytest.mark.parametrize(("n", "n_groups", "k", "seed"), [(50, 7, 3, 0), (90, 12, 5, 4)])
def test_group_fold_assign_equals_group_kfold(n: int, n_groups: int, k: int, seed: int) -> None:
    groups = np.random.default_rng(seed).integers(0, n_groups, n).astype(str)
    fold = group_fold_assign(groups, k, seed)
    split = GroupKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), groups=groups)
    for f, (train, test) in enumerate(split):
        np.testing.assert_array_equal(np.flatnonzero(fold == f), test)
        assert not set(groups[train]) & set(groups[test])


def test_ridge_group_by_equals_sklearn(tmp_path) -> None:
    ds = class_set(n=96, n_classes=3, seed=6, n_templates=8)
    cache = class_cache(tmp_path / "c.zarr", ds)
    alphas = [0.3, 5.0]
    probes = fit_probes(
        cache, prompt_set="ops", target="value", alphas=alphas, seed=5, group_by="template"
    )
    y, groups = ds["value"].values, ds["template"].values
    for i in range(len(probes.layers)):
        x = last_rows(ds, i)
        for j, a in enumerate(alphas):
            cv = GroupKFold(5, shuffle=True, random_state=5)
            want = cross_val_score(Ridge(alpha=a), x, y, cv=cv, groups=groups)
            np.testing.assert_allclose(
                probes.dataset["cv_r2_fold"].values[:, i, j], want, atol=1e-6
            )
    assert probes.lineage["group_by"] == "template"


def test_group_by_too_few_groups_and_missing_values(tmp_path) -> None:
    ds = class_set(n=40, n_classes=2, seed=1, n_templates=3)
    tpl = ds["template"].values.copy()
    ds["partial"] = ("prompt", np.where(np.arange(40) < 5, "", tpl))
    cache = class_cache(tmp_path / "c.zarr", ds)
    with pytest.raises(InvalidArgumentError, match="at least cv=5 distinct groups, got 3"):
        fit_probes(cache, prompt_set="ops", target="value", group_by="template")
    with pytest.raises(InvalidArgumentError, match="5 missing"):
        fit_probes(cache, prompt_set="ops", target="value", group_by="partial", cv=2)


def test_too_few_groups_and_singleton_classes_never_cut_a_list_silently() -> None:
    """breaker12: 6 groups for cv=7 listed 5 of them as if they were all ('got 6 (g0, ..., g4)')."""
    from actstore.analysis._folds import class_labels

    values = np.array([f"g{i % 6}" for i in range(30)])
    with pytest.raises(InvalidArgumentError, match=r"got 6 \(g0, g1, g2, g3, g4, \.\.\.\)"):
        group_fold_assign(values, 7, 0)
    with pytest.raises(InvalidArgumentError, match=r"got 3 \(g0, g1, g2\);"):
        group_fold_assign(values[:3], 5, 0)
    import xarray as xr

    lab = np.array(["a", "a"] + [f"s{i}" for i in range(7)])
    ds = xr.Dataset({"c": ("prompt", lab)})
    with pytest.raises(InvalidArgumentError, match=r"class\(es\) s0, s1, s2, s3, s4, \.\.\.;"):
        class_labels(ds, "c", "logistic")
