"""Detection: every layer's probe at every real token, with per-prompt statistics and controls.

The reference study's number is the "average minimum error": for each prompt, the smallest
``|prediction - target|`` over its tokens, averaged over prompts. With dozens of tokens per prompt
that minimum is small by chance alone, so every statistic here is computed three times:

* ``probe``: the fitted probe against the true target;
* ``shuffled_probe``: the probe fitted on shuffled labels, against the true target;
* ``random_target``: the fitted probe against a random in-range target (uniform between the set's
  smallest and largest target value), i.e. the minimum error chance alone gives.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from actstore._progress import dask_progress
from actstore.analysis._class_probeset import detection_link, detection_target
from actstore.analysis._data import SetSource, label_vector, span_masks
from actstore.analysis._degenerate import warn_detection_skipped, warn_undefined_z
from actstore.analysis._detect_write import _check_names, _open_for_detect, _write_back
from actstore.analysis._estimator import check_whole
from actstore.analysis._persist import check_compatible
from actstore.analysis._probes import ProbeSet
from actstore.analysis._ridge import CONSTANT_RTOL
from actstore.analysis._significance import (
    check_permutations,
    random_target_null,
    shuffled_null,
    significance,
    train_source,
)
from actstore.analysis._verdict import verdict_rows
from actstore.errors import InvalidArgumentError, ReadOnlyError, UnknownNameError
from actstore.store import derived_name

__all__ = ["CONTROLS", "DetectionResult", "detect", "token_statistics"]

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
                row[f"{control}_mean_min_error"] = _mean(best)
                row[f"{control}_mean_z"] = _mean(st["z"].values[c, :, i])
                if "hit" in st:
                    row[f"{control}_hit_rate"] = _mean(st["hit"].values[c, :, i])
                    row[f"{control}_median_span_rank"] = _median(st["span_rank"].values[c, :, i])
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
                row["shuffled_null_mean_min_error"] = _mean(sig["null_shuffled"].values[i])
                row["random_null_mean_min_error"] = _mean(sig["null_random"].values[i])
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


def _mean(values: np.ndarray) -> float:
    """Mean of the finite values, NaN when there are none (no numpy warning)."""
    ok = np.isfinite(values)
    return float(values[ok].mean()) if ok.any() else float("nan")


def _median(values: np.ndarray) -> float:
    ok = np.isfinite(values)
    return float(np.median(values[ok])) if ok.any() else float("nan")


def _predict(
    src: SetSource, probes: ProbeSet, hook: str, scheduler: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions ``(prompt, probe layer, token, probe)`` float32, padding NaN, chunk by chunk."""
    ds = src.ds
    act = ds[hook].sel(layer=probes.layers).data
    if not isinstance(act, da.Array):
        act = da.from_array(np.asarray(act), chunks=(64, -1, -1, -1))
    coefs, icepts = zip(
        *[probes.weights(c) for c in ([False, True] if probes.has_control else [False])]
    )
    w = np.stack(coefs, axis=-1)  # (layer, d_model, probe)
    b = np.stack(icepts, axis=-1)  # (layer, probe)
    w_da = da.from_array(w, chunks=(act.chunks[1], act.chunks[3], -1))

    def _cast(block: np.ndarray) -> np.ndarray:
        return block.astype(np.float32)

    # float32 activations times float64 weights: the product accumulates in float64.
    pred = da.einsum("pltd,ldc->pltc", act.map_blocks(_cast, dtype=np.float32), w_da)
    pred = (pred + b[None, :, None, :]).astype(np.float32)
    with dask_progress("detect"):
        (values,) = dask.compute(pred, scheduler=scheduler)
    n_tokens = np.asarray(ds["n_tokens"].values, dtype=np.int64)
    pad = np.arange(values.shape[2])[None, :] >= n_tokens[:, None]
    values[pad[:, None, :, None].repeat(values.shape[1], 1).repeat(values.shape[3], 3)] = np.nan
    return values, n_tokens


def detect(
    cache: Any,
    probes: ProbeSet,
    *,
    prompt_set: str,
    target: str,
    name: str | None = None,
    write: bool = True,
    span: str | None = None,
    seed: int = 0,
    allow_model_mismatch: bool = False,
    scheduler: str | None = None,
    layers: Sequence[int] | None = None,
    permutations: int = 100,
    train: Any = None,
) -> DetectionResult:
    """Apply each layer's probe at every real token of ``prompt_set`` and compare with ``target``.

    Parameters
    ----------
    cache : a cache path/URL, a ``Cache`` (needed for ``write=True``) or an ``xarray.Dataset``.
    probes : from :func:`fit_probes` or :func:`load_probes`; refused if its d_model or model
        fingerprint do not match the cache (``allow_model_mismatch`` lifts the last check only).
    target : numeric label ``(prompt,)`` the predictions are compared with (e.g. ``"v_squared"``).
    name : derived variable written back (default ``pred_<probe name>``, see
        :attr:`ProbeSet.name`): ``name (prompt, layer, token)`` float32 for the probe and
        ``name + "_control"`` for the shuffled-label probe, NaN at padding and unprobed layers.
        It never replaces a label, metadata or activations, nor another probe's predictions.
    layers : layers to detect at (each probed and stored); default every probed layer the prompt
        set stores, warning about the others (a subset copy may hold only some).
    span : span whose tokens are "where the value is written"; default: the span named like the
        target, if the prompt set has one.
    seed : seed of the random in-range target control and of the permutations.
    permutations : ``N`` shuffled-label probes and ``N`` random targets for each layer's p-value
        (``result.significance``, ``summary()``); 0 skips them. See ``docs/significance.md``.
    train : where the probes' training prompt set is (default ``cache``; needed when ``cache`` is
        an in-memory ``Dataset``): the shuffled-label probes are refitted on it. Without it, the
        shuffled-label p-values are NaN with an :class:`~actstore.errors.UndefinedMetricWarning`.

    Raises
    ------
    InvalidArgumentError, UnknownNameError, ReadOnlyError, ProbeMismatchError
        Bad arguments, probes that do not fit the cache, a read-only cache with ``write=True``.
    """
    n_perm = check_permutations(permutations)
    seed = check_whole("seed", seed, 0)
    src = _open_for_detect(cache, prompt_set, write)
    hook = str(probes.lineage.get("hook", "resid_post"))
    use = check_compatible(
        probes, src, hook=hook, allow_model_mismatch=allow_model_mismatch, layers=layers
    )
    if use != probes.layers:
        probes = probes.select_layers(use)
    name = derived_name(probes.default_name) if name is None else name
    if write:  # a refused name is refused before the work, not after
        _check_names(src, name, str(probes.default_name), probes.has_control)
    ds = src.ds
    # A classification probe is compared with the prompt's class index (see _class_probeset).
    y = label_vector(ds, target) if probes.kind == "ridge" else detection_target(probes, ds, target)
    masks = span_masks(ds)
    if span is None and target in masks:
        span = target
    if span is not None and span not in masks:
        raise UnknownNameError(
            f"expected a span of prompt set {prompt_set!r} ({', '.join(masks) or 'none'}), got "
            f"{span!r}; pass span= one of those or leave it out"
        )
    if write and src.cache is None:
        raise ReadOnlyError(
            "expected a cache to write predictions into, got an in-memory Dataset; "
            "pass write=False or open the cache by path"
        )
    if not np.isfinite(y).any():
        raise InvalidArgumentError(f"expected some finite {target!r} values, got none")
    values, n_tokens = _predict(src, probes, hook, scheduler)
    span_arr = masks[span] if span is not None else None
    warn_detection_skipped(y, target, span, span_arr, n_tokens)
    values = detection_link(probes.kind, values)
    lo, hi = np.nanmin(y), np.nanmax(y)
    y_random = np.random.default_rng(seed).uniform(lo, hi, size=len(y))
    main = values[..., 0]
    ctrl = values[..., 1] if values.shape[3] > 1 else np.full_like(main, np.nan)
    per = [
        token_statistics(main, y, n_tokens, span_arr),
        token_statistics(ctrl, y, n_tokens, span_arr),
        token_statistics(main, y_random, n_tokens, span_arr),
    ]
    token_str = np.asarray(ds["token_str"].values).astype(str) if "token_str" in ds else None
    dims = ("control", "prompt", "layer")
    data: dict[str, Any] = {k: (dims, np.stack([p[k] for p in per])) for k in per[0]}
    # A prompt without any finite target (NaN label) has no statistics.
    nan_rows = ~np.isfinite(y)
    for key in data:
        data[key][1][:, nan_rows] = -1 if key == "best_token" else np.nan
    warn_undefined_z(data["z"][1], ~nan_rows)
    if token_str is not None:
        best = data["best_token"][1]
        picked = token_str[np.arange(len(y))[None, :, None], np.maximum(best, 0)]
        data["best_token_str"] = (dims, np.where(best >= 0, picked, ""))
    data["target"] = (("control", "prompt"), np.stack([y, y, y_random]))
    coords = {"control": list(CONTROLS), "prompt": ds["prompt"].values, "layer": probes.layers}
    stats = xr.Dataset(data, coords=coords)
    sig = None
    if n_perm:
        observed = np.array([_mean(data["best_error"][1][0, :, i]) for i in range(len(use))])
        null_random = random_target_null(main, y, n_perm, np.random.default_rng([seed, 2]))
        trained = train_source(cache, train, probes, prompt_set)
        null_shuffled = (
            None
            if trained is None
            else shuffled_null(
                src, trained, probes, hook, y, n_perm, np.random.default_rng([seed, 1]), scheduler
            )
        )
        sig = significance(observed, null_shuffled, null_random, probes.layers, n_perm, seed)
    lineage = {
        "probe": probes.lineage,
        "probe_name": probes.default_name,
        "layers": probes.layers,
        "prompt_set": prompt_set,
        "target": target,
        "span": span,
        "seed": seed,
        "permutations": n_perm,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    pred = xr.DataArray(
        values,
        dims=("prompt", "layer", "token", "probe"),
        coords={
            "prompt": ds["prompt"].values,
            "layer": probes.layers,
            "probe": ["fit", "control"][: values.shape[3]],
        },
    )
    if write:
        lineage["written_as"] = name
        _write_back(src, name, values, probes.layers, lineage)
    n_tok = values.shape[2]
    tokens = xr.Dataset(
        {
            "token_str": (
                ("prompt", "token"),
                token_str if token_str is not None else np.full((len(y), n_tok), ""),
            ),
            "n_tokens": ("prompt", n_tokens),
            "target": ("prompt", y),
        },
        coords={"prompt": ds["prompt"].values},
    )
    if span_arr is not None:
        tokens["span_mask"] = (("prompt", "token"), span_arr)
    return DetectionResult(
        predictions=pred, stats=stats, span=span, lineage=lineage, tokens=tokens, significance=sig
    )
