"""L2-regularised logistic regression (binary and multinomial) by L-BFGS, and its estimator.

The objective is scikit-learn's ``LogisticRegression(C=C)`` with the ``lbfgs`` solver::

    C * sum_i loss_i + 1/2 * ||W||²   <=>   sum_i loss_i + alpha/2 * ||W||²,   alpha = 1 / C

with the intercept not penalised; ``loss_i`` is the binary log-loss for two classes (one weight
vector) and the multinomial (softmax) log-loss for more (one weight vector per class). The rows
are centred before the solve (the intercept absorbs the mean; the optimum is unchanged) and the
objective is divided by the number of samples, which only helps the conditioning.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import ThreadpoolController

from actstore.analysis._estimator import (
    check_positive,
    check_whole,
    check_x,
    classification_input,
)

__all__ = ["LogisticProbe", "logistic_fit", "logistic_proba"]


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()  # scanning the loaded libraries once is the slow part


def _objective(
    params: np.ndarray, x: np.ndarray, yi: np.ndarray, k: int, alpha: float
) -> tuple[float, np.ndarray]:
    n, d = x.shape
    w = params[: k * d].reshape(k, d)
    b = params[k * d :]
    z = x @ w.T + b  # (n, k)
    if k == 1:
        z1 = z[:, 0]
        loss = np.logaddexp(0.0, z1).sum() - z1[yi == 1].sum()
        g = (expit(z1) - yi)[:, None]
    else:
        logp = log_softmax(z, axis=1)
        loss = -logp[np.arange(n), yi].sum()
        g = np.exp(logp)
        g[np.arange(n), yi] -= 1.0
    grad_w = g.T @ x + alpha * w
    grad_b = g.sum(axis=0)
    value = (loss + 0.5 * alpha * float((w * w).sum())) / n
    return value, np.concatenate([grad_w.ravel(), grad_b]) / n


def logistic_fit(
    x: np.ndarray,
    yi: np.ndarray,
    n_classes: int,
    alpha: float,
    *,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    max_iter: int = 1000,
    tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimise the objective of the module docstring.

    Parameters
    ----------
    x : (sample, d_model) rows (any float dtype; used in float64).
    yi : (sample,) class indices ``0 .. n_classes - 1``.
    alpha : ``1 / C`` (> 0).
    init : a previous ``(coef, intercept)`` to start from (warm start along an alpha grid).
    tol : L-BFGS ``gtol`` on the per-sample objective.

    Returns
    -------
    coef : (k, d_model) with ``k = 1`` for two classes, else ``n_classes``.
    intercept : (k,)
    n_iter : L-BFGS iterations (a ``ConvergenceWarning`` when ``max_iter`` is reached).
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    xc = x - mean
    k = 1 if n_classes == 2 else n_classes
    d = x.shape[1]
    if init is None:
        p0 = np.zeros(k * d + k)
    else:
        w0, b0 = init
        p0 = np.concatenate([np.ravel(w0), np.asarray(b0) + w0 @ mean])
    # One BLAS thread: L-BFGS-B's own small BLAS calls slow down ~50x when threads contend.
    with _blas_controller().limit(limits=1, user_api="blas"):
        res = minimize(
            _objective,
            p0,
            args=(xc, np.asarray(yi), k, float(alpha)),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": tol, "ftol": 64 * np.finfo(float).eps},
        )
    if res.nit >= max_iter:
        warnings.warn(
            ConvergenceWarning(
                f"L-BFGS reached max_iter={max_iter} before the gradient fell below tol={tol}; "
                "raise max_iter or standardise the activations"
            ),
            stacklevel=2,
        )
    w = res.x[: k * d].reshape(k, d)
    b = res.x[k * d :] - w @ mean
    return w, b, int(res.nit)


def logistic_proba(x: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Class probabilities ``(sample, n_classes)`` of rows ``x (sample, d_model)``."""
    z = np.asarray(x, dtype=np.float64) @ coef.T + intercept
    if coef.shape[0] == 1:
        p = expit(z[:, 0])
        return np.stack([1.0 - p, p], axis=1)
    return softmax(z, axis=1)


class LogisticProbe(ClassifierMixin, BaseEstimator):
    """L2-regularised logistic regression on rows in memory, equal to scikit-learn's
    ``LogisticRegression(C=C)`` (lbfgs, multinomial for more than two classes).

    Parameters
    ----------
    C : inverse penalty, scikit-learn's convention (``alpha = 1 / C`` in :func:`fit_probes`).
    max_iter, tol : L-BFGS limits (``tol`` is the gradient norm of the per-sample objective).

    Attributes
    ----------
    classes_ : (class,)  coef_ : (k, d_model)  intercept_ : (k,), ``k = 1`` for two classes
    n_features_in_ : int  n_iter_ : int
    """

    def __init__(self, C: float = 1.0, *, max_iter: int = 1000, tol: float = 1e-6) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, x: Any, y: Any) -> LogisticProbe:
        """Fit on ``x (sample, d_model)`` and labels ``y (sample,)``; returns ``self``.

        Raises
        ------
        ValueError
            Bad ``x``/``y`` (scikit-learn's messages), a continuous ``y``, one class only,
            ``C`` or ``tol`` not a finite number > 0, ``max_iter`` not a whole number >= 1.
        """
        c = check_positive("C", self.C)
        max_iter = check_whole("max_iter", self.max_iter, 1)
        tol = check_positive("tol", self.tol)
        x, yi = classification_input(self, x, y)
        self.coef_, self.intercept_, self.n_iter_ = logistic_fit(
            x, yi, len(self.classes_), 1.0 / c, max_iter=max_iter, tol=tol
        )
        return self

    def decision_function(self, x: Any) -> np.ndarray:
        """Scores ``(sample,)`` for two classes (positive: ``classes_[1]``), else
        ``(sample, class)``."""
        z = check_x(self, x).astype(np.float64, copy=False) @ self.coef_.T + self.intercept_
        return z[:, 0] if z.shape[1] == 1 else z

    def predict_proba(self, x: Any) -> np.ndarray:
        """Probabilities ``(sample, class)`` in the order of ``classes_``."""
        return logistic_proba(check_x(self, x), self.coef_, self.intercept_)

    def predict_log_proba(self, x: Any) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(x))

    def predict(self, x: Any) -> np.ndarray:
        """The most probable class of each row ``(sample,)``."""
        proba = self.predict_proba(x)
        return self.classes_[np.argmax(proba, axis=1)]
