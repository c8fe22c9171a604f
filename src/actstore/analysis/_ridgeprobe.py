"""The in-memory ridge estimator :class:`RidgeProbe` (the engine of :func:`fit_probes` on rows
already in memory); the alpha-grid check it shares with :func:`fit_probes` is
:func:`._alphasearch.check_alphas` (no scikit-learn import on the fit path)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from actstore.analysis._alphasearch import check_alphas, search_alphas
from actstore.analysis._degenerate import check_varies, warn_undefined_folds
from actstore.analysis._estimator import (
    check_bool,
    check_cv,
    check_x,
    kfold_ids,
    regression_input,
)
from actstore.analysis._fit import choose_solver, fit_engine
from actstore.analysis._ridge import fold_mean

__all__ = ["RidgeProbe"]


class RidgeProbe(RegressorMixin, BaseEstimator):
    """Ridge regression with intercept, alpha chosen by k-fold CV, on rows already in memory.

    The same engine as :func:`fit_probes` (exact, equal to scikit-learn's ``Ridge``), for one
    ``(sample, d_model)`` matrix. A scikit-learn estimator (see :mod:`._estimator`): ``clone``,
    ``score`` (R²), ``Pipeline``, ``GridSearchCV`` work.

    Parameters
    ----------
    alphas : sequence of float, float or None
        Penalties to search; the one with the best mean held-out R² is refitted on all rows.
        ``None`` searches the default grid relative to the data's scale, widened to the
        spectrum of its covariance (``docs/probes-numerics.md``).
    cv : int
        Number of folds (``KFold(cv, shuffle=True, random_state=random_state)``).
    random_state : int, RandomState or None
        Fold seed, as in scikit-learn.
    solver : {"auto", "primal", "dual"}
        ``auto`` takes the dual when samples < d_model.
    standardize : bool
        Z-score each column inside every training fold (``StandardScaler``) first.

    Attributes
    ----------
    coef_ : ndarray, shape (d_model,)
        Weights on the raw (unstandardised) activations.
    intercept_ : float
        Intercept.
    alpha_ : float
        The chosen penalty.
    n_features_in_ : int
        ``d_model``.
    alphas_ : ndarray, shape (alpha,)
        The penalties searched (sorted; extended at an edge).
    alpha_at_edge_ : {"low", "high"} or None
        Which end of the searched grid the chosen alpha still sits at, else ``None``.
    cv_r2_, cv_mae_ : ndarray, shape (alpha,)
        Mean held-out R² / MAE over folds.
    cv_r2_folds_ : ndarray, shape (fold, alpha)
        Held-out R² per fold.
    train_r2_, train_mae_ : ndarray, shape (alpha,)
        On the training rows (beside the held-out ones only).

    Notes
    -----
    A grid whose best alpha is at an end is extended, one eigen-solve per step, until it is
    interior or a documented bound is reached (``docs/probes-numerics.md``).
    """

    def __init__(
        self,
        alphas: Sequence[float] | float | None = (1.0,),
        *,
        cv: int = 5,
        random_state: Any = 0,
        solver: str = "auto",
        standardize: bool = False,
    ) -> None:
        self.alphas = alphas
        self.cv = cv
        self.random_state = random_state
        self.solver = solver
        self.standardize = standardize

    def fit(self, x: np.ndarray, y: np.ndarray) -> RidgeProbe:
        """Fit on ``x (sample, d_model)`` and ``y (sample,)``; returns ``self``.

        Raises
        ------
        InvalidArgumentError
            Shapes do not match, ``x`` or ``y`` holds NaN or inf, too few samples for ``cv``.
        DegenerateTargetError
            ``y`` is constant (R² undefined); see ``docs/probes-numerics.md``.
        """
        check_cv(self.cv)
        standardize = check_bool("standardize", self.standardize)
        x, y = regression_input(self, x, y, self.cv)
        alphas = check_alphas(self.alphas)
        fold = kfold_ids(len(y), self.cv, self.random_state)
        check_varies(y, "y", unit="samples")
        solver = choose_solver(self.solver, *x.shape)

        def batches(layer_pos: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
            yield slice(0, len(y)), x[:, None, :].astype(np.float32, copy=False)

        def run(grid: np.ndarray) -> dict[str, np.ndarray]:
            return fit_engine(
                batches,
                n_layers=1,
                d=x.shape[1],
                y=y[:, None],
                fold=fold,
                alphas=grid,
                solver=solver,
                max_memory=2**62,
                relative=self.alphas is None,
                standardize=standardize,
            )

        out, _ = search_alphas(run, alphas, relative=self.alphas is None)
        self.coef_ = out["coef"][0, 0]
        self.intercept_ = float(out["intercept"][0, 0])
        self.alpha_ = float(out["alpha_values"][0, out["alpha_index"][0, 0]])
        self.alphas_ = out["alpha_values"][0]
        self.alpha_at_edge_ = str(out["alpha_at_edge"][0, 0]) or None
        warn_undefined_folds(out["fold_defined"], ["y"])
        self.cv_r2_folds_ = out["cv_r2_fold"][0, :, 0]
        self.cv_r2_ = fold_mean(self.cv_r2_folds_, axis=0)
        self.cv_mae_ = out["cv_mae_fold"][0, :, 0].mean(axis=0)
        self.train_r2_ = out["train_r2"][0, 0]
        self.train_mae_ = out["train_mae"][0, 0]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions ``(sample,)`` for rows ``x (sample, d_model)``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        """
        return check_x(self, x).astype(np.float64, copy=False) @ self.coef_ + self.intercept_
