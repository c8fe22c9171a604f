"""Permutation significance of detection: is the probe's mean minimum error better than chance?

The statistic is the headline of detection, the **mean minimum error** (per prompt, the smallest
``|prediction - target|`` over its real tokens, averaged over prompts; lower is better). It is
compared with two nulls, each of ``N`` draws (``permutations``), seeded:

* **shuffled-label probes** (the test, ``p_value``): ``N`` probes refitted exactly as the real one
  (same rows, folds, standardisation and alpha grid, alpha chosen by CV for each) on the training
  labels permuted across prompts, each applied at every token of the detection set against the
  true target. Under the null hypothesis (the training labels carry no information the
  activations hold) the real probe is one more such probe, so ``p`` is an exact permutation
  p-value.
* **random targets** (``p_value_random_target``): the real probe's predictions against ``N``
  targets drawn uniformly between the detection set's smallest and largest target: what chance
  alone gives a minimum over many tokens. (A Monte Carlo comparison with chance level, not an
  exact test: the real targets are not uniform.)

Each p-value is ``(1 + #{null <= observed}) / (N + 1)`` (one-sided; never 0). Over layers, the
Holm-Bonferroni step-down correction controls the family-wise error rate; ``*_corrected`` hold
the adjusted p-values. A layer **beats chance** when both corrected p-values are below
:data:`LEVEL`.

Cost: the shuffled-label probes are one more fit (one or two passes over the training rows) with
``N`` target columns: the activation statistics are shared, each column adds ``X^T y_perm``
(``n d`` multiply-adds per layer), its solve for every alpha and fold, and its held-out
residuals; plus one pass over the detection set's activations for their predictions
(``prompt x token x d_model x N`` multiply-adds per layer).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from actstore.analysis._data import SetSource, label_vector, open_source, select_positions
from actstore.analysis._fit import choose_solver, fit_engine
from actstore.analysis._folds import prompt_folds
from actstore.analysis._stats import chunk_prompts, iter_rows
from actstore.errors import InvalidArgumentError, UndefinedMetricWarning, UnknownNameError

__all__ = [
    "CORRECTION",
    "LEVEL",
    "STATISTIC",
    "check_permutations",
    "holm",
    "permutation_p",
    "random_target_null",
    "shuffled_null",
    "significance",
    "train_source",
]

CORRECTION = "Holm-Bonferroni"
STATISTIC = "mean minimum error"
#: Family-wise level at which a layer is said to beat chance.
LEVEL = 0.05


def permutation_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided p-values ``(1 + #{null <= observed}) / (N + 1)``: ``observed (L,)``, ``null
    (L, N)`` (lower is better); NaN where the observation is NaN."""
    n = null.shape[-1]
    count = (null <= observed[:, None]).sum(axis=-1)
    return np.where(np.isfinite(observed), (1.0 + count) / (n + 1.0), np.nan)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values of ``p (m,)`` (NaN entries are left out and stay NaN)."""
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out


def _mean_min(err_min: np.ndarray) -> np.ndarray:
    """Mean over prompts (axis 0) of the finite minimum errors; NaN where none is."""
    ok = np.isfinite(err_min)
    count = ok.sum(axis=0)
    total = np.where(ok, err_min, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _min_error(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``pred (p, ..., token)`` float32 (NaN at padding) against ``y (p,)`` -> min ``(p, ...)``."""
    with np.errstate(invalid="ignore"):
        err = np.abs(pred - y.reshape(-1, *([1] * (pred.ndim - 1))))
    err = np.where(np.isfinite(err), err, np.inf)
    best = err.min(axis=-1)
    return np.where(np.isfinite(best), best, np.nan)


def random_target_null(
    main: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Mean minimum error ``(layer, N)`` of ``main (prompt, layer, token)`` against ``N`` uniform
    in-range targets; prompts with a NaN label stay out, as in the observed statistic."""
    lo, hi = np.nanmin(y), np.nanmax(y)
    out = np.empty((main.shape[1], n))
    keep = np.isfinite(y)
    for j in range(n):
        y_r = rng.uniform(lo, hi, size=len(y))
        out[:, j] = _mean_min(_min_error(main[keep], y_r[keep]))
    return out


def _null_weights(
    train: SetSource, probes: Any, n: int, rng: np.random.Generator, scheduler: str | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Coefficients ``(layer, d_model, N)`` and intercepts ``(layer, N)`` of ``N`` probes fitted
    as ``probes`` were, on training labels permuted across prompts; ``None`` (with a warning)
    when the training set is not the one the probes were fitted on."""
    lin = probes.lineage
    ds = train.ds
    hook = str(lin.get("hook", "resid_post"))
    stored = [int(v) for v in ds["layer"].values]
    layer_pos = np.array([stored.index(v) for v in probes.layers])
    y_prompt = label_vector(ds, str(lin["target"]))
    labelled = np.flatnonzero(np.isfinite(y_prompt))
    prompt, token = select_positions(ds, str(lin.get("position", "last")), labelled)
    groups, inverse = np.unique(prompt, return_inverse=True)
    if "n_samples" in lin and int(lin["n_samples"]) != len(prompt):
        # A subset copy, say: refitting on other rows would not reproduce the probes.
        _warn_no_shuffled(
            f"the probes were fitted on {lin['n_samples']} samples, prompt set "
            f"{train.prompt_set!r} here gives {len(prompt)}; pass the training cache as train= "
            "(--train-cache)"
        )
        return None
    # The probes' own folds (grouped by their group_by label when they had one).
    fold = prompt_folds(
        ds, groups, int(lin.get("cv", 5)), int(lin.get("seed", 0)), lin.get("group_by")
    )[inverse]
    y_groups = y_prompt[groups]
    y = np.stack([y_groups[rng.permutation(len(groups))][inverse] for _ in range(n)], axis=1)
    d = int(ds.sizes["d_model"])
    kind = choose_solver(str(lin.get("solver", "auto")), len(prompt), d)

    def batches(sub: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
        return iter_rows(
            ds[hook], layer_pos[sub], prompt, token, scheduler=scheduler, unit=chunk_prompts(ds)
        )

    with warnings.catch_warnings():
        # Folds with constant held-out labels were already reported when the probes were fitted.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        out = fit_engine(
            batches,
            n_layers=len(layer_pos),
            d=d,
            y=y,
            fold=fold,
            alphas=np.asarray(probes.dataset["alpha_grid"].values, dtype=np.float64),
            solver=kind,
            max_memory=2 * 2**30,
            layers=probes.layers,
            relative=bool(lin.get("alpha_relative", False)),
            standardize=bool(lin.get("standardize", False)),
        )
    return out["coef"].transpose(0, 2, 1), out["intercept"]


def shuffled_null(
    src: SetSource,
    train: SetSource,
    probes: Any,
    hook: str,
    y: np.ndarray,
    n: int,
    rng: np.random.Generator,
    scheduler: str | None,
) -> np.ndarray | None:
    """Mean minimum error ``(layer, N)`` of ``N`` shuffled-label probes on the detection set
    (``None`` where they cannot be refitted)."""
    weights = _null_weights(train, probes, n, rng, scheduler)
    if weights is None:
        return None
    w, b = weights
    ds = src.ds
    act = ds[hook].sel(layer=probes.layers).data
    if not isinstance(act, da.Array):
        act = da.from_array(np.asarray(act), chunks=(64, -1, -1, -1))
    n_tokens = np.asarray(ds["n_tokens"].values, dtype=np.int64)
    keep = np.isfinite(y)

    def block_min(block: np.ndarray, start: int) -> np.ndarray:
        p = block.shape[0]
        pred = np.einsum("pltd,ldn->pltn", block.astype(np.float32), w, optimize=True)
        pred = (pred + b[None, :, None, :]).astype(np.float32)
        pad = np.arange(block.shape[2])[None, :] >= n_tokens[start : start + p, None]
        pred[pad[:, None, :, None].repeat(pred.shape[1], 1).repeat(pred.shape[3], 3)] = np.nan
        return _min_error(pred.transpose(0, 1, 3, 2), y[start : start + p])  # (p, L, N)

    act = act.rechunk({1: -1, 2: -1, 3: -1})  # one block per prompt chunk: every layer, token
    starts = np.cumsum((0, *act.chunks[0][:-1]))
    blocks = act.to_delayed().reshape(len(act.chunks[0]), -1)[:, 0]
    parts = [dask.delayed(block_min)(blk, int(s)) for blk, s in zip(blocks, starts, strict=True)]
    mins = np.concatenate(dask.compute(*parts, scheduler=scheduler), axis=0)
    return _mean_min(mins[keep])


def significance(
    observed: np.ndarray,
    null_shuffled: np.ndarray | None,
    null_random: np.ndarray,
    layers: Sequence[int],
    n: int,
    seed: int,
) -> xr.Dataset:
    """Per-layer p-values (raw and Holm-Bonferroni corrected) and the nulls, as a Dataset."""
    if null_shuffled is None:
        null_shuffled = np.full_like(null_random, np.nan)
    p = permutation_p(observed, null_shuffled)
    if not np.isfinite(null_shuffled).any():
        p = np.full(len(layers), np.nan)
    p_r = permutation_p(observed, null_random)
    p_c, p_rc = holm(p), holm(p_r)
    m = len(layers)
    if m / (n + 1) >= LEVEL:
        need = int(np.ceil(m / LEVEL))  # smallest N with m / (N + 1) < LEVEL
        warnings.warn(
            UndefinedMetricWarning(
                f"with {n} permutations and {m} layers no corrected p-value can fall below "
                f"{m / (n + 1):.3g} ({m}/{n + 1}), so no layer can be shown to beat chance at "
                f"{LEVEL}; pass permutations >= {need}"
            ),
            stacklevel=3,
        )
    beats = (p_c < LEVEL) & (p_rc < LEVEL)
    return xr.Dataset(
        {
            "observed": ("layer", observed),
            "null_shuffled": (("layer", "permutation"), null_shuffled),
            "null_random": (("layer", "permutation"), null_random),
            "p_value": ("layer", p),
            "p_value_corrected": ("layer", p_c),
            "p_value_random_target": ("layer", p_r),
            "p_value_random_target_corrected": ("layer", p_rc),
            "beats_chance": ("layer", beats),
        },
        coords={"layer": list(layers)},
        attrs={
            "statistic": STATISTIC,
            "permutations": n,
            "correction": CORRECTION,
            "level": LEVEL,
            "seed": seed,
        },
    )


def train_source(cache: Any, train: Any, probes: Any, prompt_set: str) -> SetSource | None:
    """The probes' training prompt set, or ``None`` (with a warning) where it cannot be had."""
    lin = probes.lineage
    why = None
    if lin.get("kind", "ridge") != "ridge":
        why = f"shuffled-label refits are implemented for ridge probes, got kind {lin['kind']!r}"
    elif "target" not in lin or "prompt_set" not in lin:
        why = "the probes' lineage does not name their training set"
    elif train is None and isinstance(cache, xr.Dataset):
        why = (
            f"the training prompt set {lin['prompt_set']!r} is not known for an in-memory "
            "Dataset; pass train= (its Dataset or cache)"
        )
    if why is None:
        try:
            return open_source(cache if train is None else train, str(lin["prompt_set"]))
        except UnknownNameError as exc:
            if train is not None:
                raise
            why = f"{exc}; pass train= (--train-cache)"
    _warn_no_shuffled(why)
    return None


def _warn_no_shuffled(why: str) -> None:
    warnings.warn(
        UndefinedMetricWarning(
            f"p_value (against shuffled-label probes) is NaN: {why}; the random-target "
            "p-values are given"
        ),
        stacklevel=4,
    )


def check_permutations(n: Any) -> int:
    """``permutations`` must be a whole number >= 0."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise InvalidArgumentError(
            f"expected permutations a whole number >= 0, got {n!r}; pass e.g. permutations=100 "
            "(0 skips the p-values)"
        )
    return int(n)
