"""Fitting ridge probes from a cache: :func:`fit_probes` (one probe per layer, k-fold CV, control).

The result type, :class:`ProbeSet`, lives in :mod:`._probeset`; the classification kinds are fitted
by :mod:`._classify`.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from actstore._locations import located
from actstore._progress import Progress
from actstore._version import __version__
from actstore.analysis._alphasearch import check_alphas, search_alphas
from actstore.analysis._data import fingerprint_digest, losses_of
from actstore.analysis._degenerate import (
    check_finite_target,
    check_varies,
    warn_missing_labels,
    warn_undefined_folds,
)
from actstore.analysis._estimator import check_bool, check_cv, check_whole
from actstore.analysis._fit import choose_solver, fit_engine
from actstore.analysis._probeset import _ATTR, _EDGE_CODE, ArraysDataset, ProbeSet
from actstore.analysis._ridge import fold_mean, kfold_assign
from actstore.errors import InvalidArgumentError, SampleLossWarning, UnknownNameError

__all__ = ["fit_probes"]

_CONTROLS = ("shuffle", "none")
#: The probe kinds (``actstore.analysis._classify.KINDS``; a test keeps them equal).
_KINDS = ("ridge", "logistic", "mean_diff")


def _build_dataset(
    out: dict[str, np.ndarray], *, layers: Sequence[int], alphas: np.ndarray, lineage: dict
) -> ArraysDataset:
    t = out["coef"].shape[1]
    data: dict[str, Any] = {
        "alpha_values": (("layer", "alpha_grid"), out["alpha_values"]),
        "data_scale": (("layer",), out["data_scale"]),
    }
    rows = np.arange(len(layers))
    for col, pre in enumerate(["", "control_"][:t]):
        idx = out["alpha_index"][:, col]
        data[pre + "coef"] = (("layer", "d_model"), out["coef"][:, col])
        data[pre + "intercept"] = (("layer",), out["intercept"][:, col])
        data[pre + "alpha"] = (("layer",), out["alpha_values"][rows, idx])
        # -1: the smallest alpha of the grid, 1: the largest, 0: interior (no string arrays in
        # zarr v3).
        data[pre + "alpha_at_edge"] = (
            ("layer",),
            np.array([_EDGE_CODE[e] for e in out["alpha_at_edge"][:, col]], dtype=np.int8),
        )
        data[pre + "cv_r2"] = (("layer", "alpha_grid"), fold_mean(out["cv_r2_fold"][:, :, col], 1))
        data[pre + "cv_mae"] = (("layer", "alpha_grid"), out["cv_mae_fold"][:, :, col].mean(1))
        data[pre + "cv_r2_fold"] = (
            ("fold", "layer", "alpha_grid"),
            out["cv_r2_fold"][:, :, col].transpose(1, 0, 2),
        )
        data[pre + "train_r2"] = (("layer", "alpha_grid"), out["train_r2"][:, col])
        data[pre + "train_mae"] = (("layer", "alpha_grid"), out["train_mae"][:, col])
    coords = {
        "layer": np.asarray(layers, dtype=np.int64),
        "alpha_grid": alphas,
        "fold": np.arange(out["cv_r2_fold"].shape[1]),
    }
    return ArraysDataset(data, coords=coords, attrs={_ATTR: lineage})


@located("read", "cache")
def fit_probes(
    cache: Any,
    *,
    prompt_set: str,
    target: str,
    layers: Sequence[int] | None = None,
    position: str = "last",
    alphas: Sequence[float] | float | None = None,
    cv: int = 5,
    seed: int = 0,
    control: str = "shuffle",
    hook: str = "resid_post",
    solver: str = "auto",
    max_memory: int = 2 * 2**30,
    scheduler: str | None = None,
    kind: str = "ridge",
    group_by: str | None = None,
    standardize: bool = False,
) -> ProbeSet:
    """Fit one ridge probe per layer from a cache, out of core, with k-fold CV and a control.

    Parameters
    ----------
    cache : a cache path/URL, a ``Cache``, an ``xarray.DataTree`` or the prompt set's ``Dataset``.
    prompt_set : the prompt set to train on (e.g. ``"arithmetic"``).
    target : numeric label column ``(prompt,)`` to regress (e.g. ``"value"``).
    layers : real layer indices (the ``layer`` coordinate); ``None`` = every stored layer.
    position : which tokens of each prompt are samples: ``last``, ``before:SPAN``, ``span:SPAN``,
        ``all`` (every selected token is one sample labelled with its prompt's target; folds are
        drawn over prompts, so no prompt is on both sides of a split).
    alphas : penalty grid; the best mean held-out R² per layer is refitted on all samples.
        ``None`` (default): a grid relative to each layer's scale (``trace(C) / d``). A grid whose
        best alpha is at an end in some layer is extended (x10 steps, to a bound), and layers
        still at an end are flagged ``alpha_at_edge``; see ``docs/probes-numerics.md``.
        Classification kinds: ``None`` is ``C = 1`` (no search); a searched grid whose best alpha
        is at an end is flagged ``alpha_at_edge``, not extended (``docs/probes.md``).
    standardize : z-score each activation dimension with the statistics of each training fold
        (as ``make_pipeline(StandardScaler(), Ridge())``, or ``LogisticRegression`` /
        ``MeanDiffProbe`` for the classification kinds); coefficients are saved for raw rows.
    cv, seed : ``KFold(cv, shuffle=True, random_state=seed)`` over prompts.
    control : ``"shuffle"`` fits the same probes on labels permuted across prompts; ``"none"``.
    solver : ``auto`` (dual when samples < d_model), ``primal`` (float64 ``X^T X`` per fold,
        any number of samples) or ``dual``.
    max_memory : bytes the primal statistics may take; layers are fitted in groups to stay below
        (one pass over the data per group).
    scheduler : dask scheduler for reading (default: threads, or the active distributed client).
    kind : ``ridge`` (regression), ``logistic`` (L2 logistic regression, ``C = 1 / alpha``,
        binary or multinomial) or ``mean_diff`` (difference of the two class means); the last two
        take a categorical ``target`` and hold the selected rows in memory (the memory rule of
        :mod:`._classify`, bounded by ``max_memory``). See ``docs/probes.md``.
    group_by : a ``(prompt,)`` label (e.g. ``template``): folds are drawn over its values, as
        ``GroupKFold(cv, shuffle=True, random_state=seed)``, so no group is on both sides.

    Returns
    -------
    ProbeSet
        One probe per layer. A fold whose held-out targets are constant has NaN R² (with an
        :class:`~actstore.errors.UndefinedMetricWarning`); ``cv_r2`` averages the other folds.

    Raises
    ------
    DegenerateTargetError
        The target holds inf, or is constant over the selected prompts (R² undefined).
    InvalidArgumentError, UnknownNameError
        Bad arguments; too few labelled prompts for ``cv``; NaN or inf activations.

    Warns
    -----
    SampleLossWarning
        Prompts left out: NaN labels, or no token at ``position`` (span absent, only in padding,
        or at token 0 for ``before:SPAN``), each with its count.
    """
    if control not in _CONTROLS:
        raise InvalidArgumentError(f"expected control in {_CONTROLS}, got {control!r}")
    if kind not in _KINDS:
        raise InvalidArgumentError(f"expected kind in {_KINDS}, got {kind!r}; e.g. kind='logistic'")
    alpha_arr = check_alphas(alphas)
    standardize = check_bool("standardize", standardize)
    cv = check_cv(cv)
    seed = check_whole("seed", seed, 0)
    max_memory = check_whole("max_memory", max_memory, 1)
    light = None
    if kind == "ridge" and group_by is None:  # materialised rows of a local cache: no zarr/xarray
        from actstore.analysis._light import light_set

        light = light_set(
            cache, prompt_set, hook=hook, position=position, target=target, layers=layers
        )
    if light is None:
        from actstore.analysis._data import open_source

        src = open_source(cache, prompt_set)
        ds = src.ds
        if hook not in ds.variables or ds[hook].dims != ("prompt", "layer", "token", "d_model"):
            raise UnknownNameError(
                f"expected an activation variable (prompt, layer, token, d_model) named "
                f"{hook!r} in prompt set {prompt_set!r}; pass hook= one of the stored hooks"
            )
        stored = [int(v) for v in ds["layer"].values]
    else:  # the light path checked the hook, the layers and the target already
        stored = light.layers
    wanted = stored if layers is None else [int(v) for v in layers]
    missing = [v for v in wanted if v not in stored]
    if missing or not wanted:
        raise UnknownNameError(
            f"expected layers among the stored {stored}, got {missing or wanted}; "
            "pass layers that were extracted"
        )
    layer_pos = np.array([stored.index(v) for v in wanted])
    if kind != "ridge":  # (never the light path)
        from actstore.analysis._classify import DEFAULT_CLASS_ALPHAS, fit_class_probes

        grid = DEFAULT_CLASS_ALPHAS if alphas is None else alpha_arr
        ds = fit_class_probes(
            src, kind=kind, hook=hook, layers=wanted, layer_pos=layer_pos, target=target,
            position=position, alphas=grid, cv=cv, seed=seed, control=control,
            group_by=group_by, max_memory=max_memory, scheduler=scheduler,
            standardize=standardize,
        )  # fmt: skip
        return ProbeSet(ds)
    if light is None:
        from actstore.analysis._data import label_vector

        y_prompt = label_vector(ds, target)
    else:
        y_prompt = light.y_prompt
    check_finite_target(y_prompt, f"label {target!r}")
    labelled = np.flatnonzero(np.isfinite(y_prompt))
    if light is not None:
        prompt, token = light.select(labelled)
        d = light.d_model
        origin = (light.url, fingerprint_digest(light.fingerprint), light.fingerprint.get("model"))

        def folds_of(groups: np.ndarray) -> np.ndarray:
            return kfold_assign(len(groups), cv, seed)

        def losses(groups: np.ndarray) -> str | None:
            return losses_of(light.n_tokens, light.masks, position, labelled, groups)

        def read(sub: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
            return light.batches(layer_pos[sub], prompt)

    else:
        from actstore.analysis._data import position_losses, select_positions
        from actstore.analysis._folds import prompt_folds

        prompt, token = select_positions(ds, position, labelled)
        d = int(ds.sizes["d_model"])
        origin = (src.url, src.digest, src.model_fingerprint)

        def folds_of(groups: np.ndarray) -> np.ndarray:
            return prompt_folds(ds, groups, cv, seed, group_by)

        def losses(groups: np.ndarray) -> str | None:
            return position_losses(ds, position, labelled, groups)

        read = _full_reader(src, hook, position, prompt, token, layer_pos, scheduler)

    groups, inverse = np.unique(prompt, return_inverse=True)
    fold = folds_of(groups)[inverse]  # folds over prompts, never over tokens
    check_varies(y_prompt[groups], f"label {target!r}")
    # The fit goes ahead: say which prompts it leaves out, and why.
    warn_missing_labels(y_prompt, f"label {target!r}")
    lost = losses(groups)
    if lost is not None:
        warnings.warn(SampleLossWarning(lost), stacklevel=2)
    ys = [y_prompt[prompt]]
    if control == "shuffle":
        perm = np.random.default_rng(seed).permutation(len(groups))
        ys.append(y_prompt[groups[perm]][inverse])
    y = np.stack(ys, axis=1)
    kind = choose_solver(solver, len(prompt), d)

    # every sample of every layer is read once by the dual solver, twice by the primal one
    passes = 1 if kind == "dual" else 2
    bar = Progress("probe fit", passes * len(prompt) * len(wanted), "rows (sample x layer)")

    def batches(sub: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
        for sl, block in read(sub):
            bar.update(block.shape[0] * block.shape[1])
            yield sl, block

    runs = []

    def run(grid: np.ndarray) -> dict[str, np.ndarray]:
        if runs:  # an extension of the grid: the same passes again
            bar.add_total(passes * len(prompt) * len(wanted))
        runs.append(len(grid))
        return fit_engine(
            batches,
            n_layers=len(wanted),
            d=d,
            y=y,
            fold=fold,
            alphas=grid,
            solver=kind,
            max_memory=max_memory,
            layers=wanted,
            relative=alphas is None,
            standardize=standardize,
        )

    with bar:
        out, alpha_arr = search_alphas(run, alpha_arr, relative=alphas is None)
    names = [f"label {target!r}", f"the shuffled control of label {target!r}"]
    warn_undefined_folds(out["fold_defined"], names[: y.shape[1]])
    lineage = {
        "kind": "ridge",
        "prompt_set": prompt_set,
        "target": target,
        "position": position,
        "layers": wanted,
        "hook": hook,
        "d_model": d,
        "cv": cv,
        "seed": seed,
        "group_by": group_by,
        "control": control,
        "solver": kind,
        "standardize": bool(standardize),
        "alpha_relative": alphas is None,
        # The grid asked for (None: the default relative grid); alpha_grid may extend it.
        "alphas": None if alphas is None else sorted(float(a) for a in np.atleast_1d(alphas)),
        "alpha_at_edge": {
            str(layer): str(out["alpha_at_edge"][i, 0]) or None for i, layer in enumerate(wanted)
        },
        "n_samples": len(prompt),
        "n_prompts": len(groups),
        "cache_url": origin[0],
        "cache_fingerprint": origin[1],
        "model_fingerprint": origin[2],
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "actstore_version": __version__,
    }
    return ProbeSet(_build_dataset(out, layers=wanted, alphas=alpha_arr, lineage=lineage))


def _full_reader(
    src: Any,
    hook: str,
    position: str,
    prompt: np.ndarray,
    token: np.ndarray,
    layer_pos: np.ndarray,
    scheduler: str | None,
) -> Callable[[np.ndarray], Iterator[tuple[slice, np.ndarray]]]:
    """Row batches through dask: the materialised positions when stored, else the full array."""
    from actstore.analysis._positions import row_source
    from actstore.analysis._stats import iter_rows

    rs = row_source(src, hook, position, prompt, token)

    def read(sub: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
        return iter_rows(
            rs.act, layer_pos[sub], prompt, rs.token, scheduler=scheduler, unit=rs.unit
        )

    return read
