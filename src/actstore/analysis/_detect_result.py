"""What detection returns: :class:`DetectionResult` and :func:`token_statistics`.

The statistics of predictions against targets per (prompt, layer), computed for each of
:data:`CONTROLS`; :func:`actstore.analysis.detect` produces the predictions (see :mod:`._detect`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from actstore.analysis._ridge import CONSTANT_RTOL
from actstore.analysis._verdict import verdict_rows

__all__ = ["CONTROLS", "DetectionResult", "finite_mean", "token_statistics"]

#: The three comparisons of every statistic (the ``control`` dimension of the statistics).
CONTROLS = ("probe", "shuffled_probe", "random_target")


@dataclass(frozen=True, kw_only=True)
class DetectionResult:
    """What :func:`detect` found.

    Attributes
    ----------
    predictions : ``(prompt, layer, token, probe)`` float32, NaN at padding; ``probe`` is ``fit``
        and (when the probes have one) ``control``.
    stats : ``(control, prompt, layer)`` statistics: ``best_token``, ``best_token_str``,
        ``best_pred``, ``best_error``, ``z``, and when a span is known ``span_error``,
        ``span_rank``, ``hit`` (best token inside the span). ``target`` ``(control, prompt)``
        is what each row was compared with.
    span : the span compared with, or ``None``.
    lineage : what was applied to what.
    tokens : ``token_str (prompt, token)``, ``n_tokens (prompt,)``, ``target (prompt,)`` and, with a
        span, ``span_mask (prompt, token)``: what plots and reports label things with.
    significance : per ``layer``: ``p_value`` (against shuffled-label probes), ``p_value_corrected``
        (Holm-Bonferroni over layers), the same against random targets
        (``p_value_random_target[_corrected]``), ``beats_chance``, the ``observed`` statistic and
        the nulls ``(layer, permutation)``; ``None`` with ``permutations=0``. See
        ``docs/significance.md``.
    """

    predictions: xr.DataArray
    stats: xr.Dataset
    span: str | None
    lineage: dict[str, Any]
    tokens: xr.Dataset
    significance: xr.Dataset | None = None

    def summary(self) -> list[dict[str, Any]]:
        """Per layer: mean minimum error (the reference's number) beside its controls, hit rates.

        Means are over the prompts where a statistic is defined (see :func:`token_statistics`);
        a control without any (no shuffled-label probe) reads NaN.
        """
        st = self.stats
        rows = []
        for i, layer in enumerate(st["layer"].values):
            row: dict[str, Any] = {"layer": int(layer)}
            for c, control in enumerate(st["control"].values):
                best = st["best_error"].values[c, :, i]
                row[f"{control}_mean_min_error"] = finite_mean(best)
                row[f"{control}_mean_z"] = finite_mean(st["z"].values[c, :, i])
                if "hit" in st:
                    row[f"{control}_hit_rate"] = finite_mean(st["hit"].values[c, :, i])
                    row[f"{control}_median_span_rank"] = finite_median(
                        st["span_rank"].values[c, :, i]
                    )
            if self.significance is not None:
                sig = self.significance
                for key in (
                    "p_value",
                    "p_value_corrected",
                    "p_value_random_target",
                    "p_value_random_target_corrected",
                ):
                    row[key] = float(sig[key].values[i])
                row["beats_chance"] = bool(sig["beats_chance"].values[i])
                row["shuffled_null_mean_min_error"] = finite_mean(sig["null_shuffled"].values[i])
                row["random_null_mean_min_error"] = finite_mean(sig["null_random"].values[i])
                row["n_permutations"] = int(sig.attrs["permutations"])
                row["p_correction"] = str(sig.attrs["correction"])
            rows.append(row)
        return rows

    def conclusions(self) -> list[str]:
        """One sentence per layer: whether detection beats chance, with its p-values (empty
        without permutations); the rule is :func:`actstore.analysis._verdict.layer_verdict`."""
        if self.significance is None:
            return []
        level = float(self.significance.attrs["level"])
        return [sentence for _, sentence in verdict_rows(self.summary(), level=level)]

    @property
    def best_layer(self) -> int:
        """Layer with the smallest mean minimum error of the fitted probe."""
        rows = self.summary()
        return min(rows, key=lambda r: np.nan_to_num(r["probe_mean_min_error"], nan=np.inf))[
            "layer"
        ]

    def per_prompt(self, control: str = "probe") -> list[dict[str, Any]]:
        """Rows ``{prompt, layer, best_token, best_token_str, best_pred, best_error, z, ...}``."""
        st = self.stats.sel(control=control)
        names = [v for v in st.data_vars if st[v].dims == ("prompt", "layer")]
        out = []
        for p, prompt in enumerate(st["prompt"].values):
            for i, layer in enumerate(st["layer"].values):
                row: dict[str, Any] = {"prompt": int(prompt), "layer": int(layer)}
                for v in names:
                    val = st[v].values[p, i]
                    row[v] = str(val) if isinstance(val, str) else float(val)
                out.append(row)
        return out

    def to_dict(self, per_prompt: bool = True) -> dict[str, Any]:
        """JSON-ready: lineage, span, per-layer summary and (optionally) per-prompt statistics."""
        out: dict[str, Any] = {"lineage": self.lineage, "span": self.span, "layers": self.summary()}
        if self.significance is not None:
            out["significance"] = {
                **{k: v for k, v in self.significance.attrs.items()},
                "conclusions": self.conclusions(),
            }
        if per_prompt:
            out["prompts"] = {c: self.per_prompt(c) for c in self.stats["control"].values}
        return out


def token_statistics(
    pred: np.ndarray, target: np.ndarray, n_tokens: np.ndarray, span: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Statistics of ``pred (prompt, layer, token)`` against ``target (prompt,)`` per prompt, layer.

    Only the first ``n_tokens[p]`` tokens of prompt ``p`` count. ``span (prompt, token)`` marks the
    tokens of a named span (or ``None``). ``z`` is how far the best token's error lies below the
    prompt's mean token error, in standard deviations of that prompt's token errors.

    A (prompt, layer) with no finite error (NaN target, no probe) has NaN statistics and
    ``best_token`` -1; ``z`` is NaN where the token errors do not vary (one real token, or all
    equal to within :data:`._ridge.CONSTANT_RTOL` of the largest); span statistics are NaN for
    prompts without a real span token. Nothing here emits numpy warnings.
    """
    n_tok = pred.shape[2]
    real = np.arange(n_tok)[None, :] < n_tokens[:, None]  # (prompt, token)
    with np.errstate(invalid="ignore"):
        err = np.abs(pred - target[:, None, None])
    valid = real[:, None, :] & np.isfinite(err)  # (prompt, layer, token)
    count = valid.sum(axis=-1)
    has = count > 0
    filled = np.where(valid, err, np.inf)
    best = np.argmin(filled, axis=-1)  # (prompt, layer)
    best_err = np.take_along_axis(filled, best[..., None], -1)[..., 0]
    best_pred = np.take_along_axis(pred, best[..., None], -1)[..., 0]
    zeroed = np.where(valid, err, 0.0)
    safe = np.maximum(count, 1)
    mean = zeroed.sum(axis=-1) / safe
    dev = np.where(valid, err - mean[..., None], 0.0)
    std = np.sqrt((dev * dev).sum(axis=-1) / safe)
    spread = np.where(valid, err, -np.inf).max(axis=-1) - best_err
    top = np.where(valid, err, 0.0).max(axis=-1)
    varies = has & (spread > CONSTANT_RTOL * top)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(varies, (mean - best_err) / np.where(varies, std, 1.0), np.nan)
    out = {
        "best_token": np.where(has, best, -1),
        "best_pred": np.where(has, best_pred, np.nan),
        "best_error": np.where(has, best_err, np.nan),
        "z": z,
    }
    if span is not None:
        in_span = span[:, None, :] & valid
        has_span = in_span.any(axis=-1)  # (prompt, layer)
        span_err = np.where(in_span, filled, np.inf).min(axis=-1)
        outside = valid & ~in_span
        rank = 1 + (outside & (filled < span_err[..., None])).sum(axis=-1)
        hit = np.take_along_axis(in_span, best[..., None], -1)[..., 0]
        out["span_error"] = np.where(has_span, span_err, np.nan)
        out["span_rank"] = np.where(has_span, rank.astype(np.float64), np.nan)
        out["hit"] = np.where(has_span, hit.astype(np.float64), np.nan)
    return out


def finite_mean(values: np.ndarray) -> float:
    """Mean of the finite values, NaN when there are none (no numpy warning)."""
    ok = np.isfinite(values)
    return float(values[ok].mean()) if ok.any() else float("nan")


def finite_median(values: np.ndarray) -> float:
    ok = np.isfinite(values)
    return float(np.median(values[ok])) if ok.any() else float("nan")
