"""The mass-mean probe: the difference of the two class means as the probe direction.

Marks & Tegmark (2023), "The Geometry of Truth: Emergent Linear Structure in Large Language Model
Representations of True/False Datasets" (arXiv:2310.06824) call it *mass-mean probing*: the
direction ``mean(class 1) - mean(class 0)``, the score of a row its projection on that direction,
and the decision threshold the midpoint of the two means. No penalty, no iterations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from actstore.analysis._estimator import check_x, classification_input

__all__ = ["MeanDiffProbe", "mean_diff_fit"]


def mean_diff_fit(x: np.ndarray, yi: np.ndarray) -> tuple[np.ndarray, float]:
    """Direction ``(d_model,) = mean(x[yi == 1]) - mean(x[yi == 0])`` and intercept
    ``-direction · (mean0 + mean1) / 2`` (score 0 at the midpoint), in float64."""
    x = np.asarray(x, dtype=np.float64)
    m0 = x[yi == 0].mean(axis=0)
    m1 = x[yi == 1].mean(axis=0)
    direction = m1 - m0
    return direction, float(-direction @ (m0 + m1) / 2.0)


class MeanDiffProbe(ClassifierMixin, BaseEstimator):
    """Binary mass-mean probe (see the module docstring) as a scikit-learn classifier.

    Attributes
    ----------
    classes_ : (2,)  coef_ : (1, d_model) the direction  intercept_ : (1,)
    n_features_in_ : int
    """

    def fit(self, x: Any, y: Any) -> MeanDiffProbe:
        """Fit on ``x (sample, d_model)`` and two-class labels ``y (sample,)``.

        Raises
        ------
        ValueError
            Bad ``x``/``y``, one class, or more than two classes.
        """
        x, yi = classification_input(self, x, y, binary=True)
        direction, intercept = mean_diff_fit(x, yi)
        self.coef_ = direction[None, :]
        self.intercept_ = np.array([intercept])
        return self

    def decision_function(self, x: Any) -> np.ndarray:
        """Projection on the direction minus the midpoint's ``(sample,)``; > 0 means
        ``classes_[1]``."""
        return check_x(self, x).astype(np.float64, copy=False) @ self.coef_[0] + self.intercept_[0]

    def predict(self, x: Any) -> np.ndarray:
        """``classes_[1]`` where the decision function is > 0, else ``classes_[0]``."""
        positive = self.decision_function(x) > 0
        return self.classes_[positive.astype(np.int64)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # two classes only (the checks use binary data)
        return tags
