"""Classification metrics from numpy, computed as scikit-learn computes them.

``accuracy_score``, ``balanced_accuracy_score`` (mean recall over the classes present in the true
labels), ``roc_auc_score`` (binary: on the positive class's score; multiclass: one-vs-rest, macro
average over the classes present, each against the rest) and ``log_loss`` (probabilities clipped
at float64 eps). A metric that is undefined on a fold (e.g. ROC AUC with one class present) is NaN.
"""

from __future__ import annotations

import numpy as np

__all__ = ["METRICS", "fold_metrics"]

METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "log_loss")


def _binary_auc(score: np.ndarray, positive: np.ndarray) -> float:
    from scipy.stats import rankdata  # ~0.5 s to import: only where an AUC is computed

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)  # average ranks for ties (the Mann-Whitney U statistic)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fold_metrics(
    yi: np.ndarray, pred: np.ndarray, score: np.ndarray, proba: np.ndarray | None
) -> dict[str, float]:
    """Metrics of one held-out fold.

    Parameters
    ----------
    yi : (sample,) true class indices.
    pred : (sample,) predicted class indices.
    score : (sample,) positive-class score (two classes) or (sample, class) per-class scores.
    proba : (sample, class) probabilities, or ``None`` (a probe without them: log-loss NaN).
    """
    present = np.unique(yi)
    recall = [float((pred[yi == c] == c).mean()) for c in present]
    if score.ndim == 1:
        auc = _binary_auc(score, yi == 1)
    else:
        aucs = [_binary_auc(score[:, c], yi == c) for c in present]
        auc = float(np.mean(aucs)) if len(present) > 1 else float("nan")
    if proba is None:
        loss = float("nan")
    else:
        eps = np.finfo(np.float64).eps
        p_true = np.clip(proba[np.arange(len(yi)), yi], eps, 1 - eps)
        loss = float(-np.log(p_true).mean())
    return {
        "accuracy": float((pred == yi).mean()),
        "balanced_accuracy": float(np.mean(recall)),
        "roc_auc": auc,
        "log_loss": loss,
    }
