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
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from actstore._progress import dask_progress
from actstore.analysis._class_probeset import detection_link, detection_target
from actstore.analysis._data import SetSource, label_vector, span_masks
from actstore.analysis._degenerate import warn_detection_skipped, warn_undefined_z
from actstore.analysis._detect_result import (
    CONTROLS,
    DetectionResult,
    finite_mean,
    token_statistics,
)
from actstore.analysis._detect_write import _check_names, _open_for_detect, _write_back
from actstore.analysis._estimator import check_whole
from actstore.analysis._persist import check_compatible
from actstore.analysis._probeset import ProbeSet
from actstore.analysis._significance import (
    check_permutations,
    random_target_null,
    shuffled_null,
    significance,
    train_source,
)
from actstore.errors import InvalidArgumentError, ReadOnlyError, UnknownNameError
from actstore.store import derived_name

__all__ = ["detect"]


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
    y = (
        label_vector(ds, target)
        if probes.kind == "ridge"
        else detection_target(probes.dataset["class"].values, ds, target)
    )
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
        observed = np.array([finite_mean(data["best_error"][1][0, :, i]) for i in range(len(use))])
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
