"""The alpha search that cannot hide at an edge: a default grid from the data's scale, extended
while the best alpha sits at either end of it.

Rule (see ``docs/probes-numerics.md``):

* **Default grid.** ``alphas=None`` searches factors of each layer's scale ``s = trace(C) / d``
  (``C`` the centred co-moments ``X_c^T X_c`` of all selected rows, of their z-scores with
  ``standardize``), two per decade: :data:`DEFAULT_FACTORS` (``1e-6 .. 1e2``) first, then, from
  the spectrum of ``C`` that the first pass returns, down to ``1e-2 lambda_min`` (the smallest
  eigenvalue above the rank tolerance: every direction, however small its scale, kept >= 99 %)
  and up to ``1e2 lambda_max`` (every direction shrunk >= 100-fold) of every layer, within
  :data:`BOUND`. The CV curve over alpha need not be unimodal (a target carried by a small-scale
  column has a local maximum at large alpha), so the grid must cover the spectrum, not only
  move its ends. Widening costs one more pass (the new alphas only).
* **Extension.** When the probe's best alpha (the target column, not its shuffled control) is the
  smallest or largest of the grid in any layer, three more alphas are added beyond that end
  (x10 steps; the bound itself when a step would pass it) and evaluated, until every layer's
  best is interior or the end reaches :data:`BOUND` (``1e-8 s`` .. ``1e6 s``; at ``1e6 s``
  every direction is shrunk at least ``1e6 / d``-fold, so the probe is nearly constant: more
  shrinkage would change nothing but make its token errors numerically equal). Every layer is
  evaluated on the same (extended) grid.
* **Flag.** A layer whose chosen alpha is still the smallest or largest of the grid gets
  ``alpha_at_edge`` ``"low"`` or ``"high"`` (``""`` otherwise). A grid of one alpha is no
  search: it is neither extended nor flagged.

Each extension step evaluates only the new alphas, which costs one more pass over the selected
rows (two for the primal solver: moments, then held-out residuals), and one eigen-solve per fold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from actstore.errors import InvalidArgumentError

__all__ = [
    "BOUND",
    "DEFAULT_FACTORS",
    "EDGES",
    "SPECTRUM_REACH",
    "check_alphas",
    "edge_flags",
    "primal_spectrum",
    "search_alphas",
    "spectrum_range",
]

#: Points per decade of the default grid (its factors are ``10 ** (k / 2)``, integer ``k``).
PER_DECADE = 2
#: The grid every default search starts from, relative to each layer's scale ``trace(C) / d``.
DEFAULT_FACTORS = 10.0 ** (np.arange(-6 * PER_DECADE, 2 * PER_DECADE + 1) / PER_DECADE)
#: The default grid reaches ``SPECTRUM_REACH[0] * lambda_min`` (every direction kept >= 99 %)
#: and ``SPECTRUM_REACH[1] * lambda_max`` (every direction shrunk >= 100-fold) of each layer.
SPECTRUM_REACH = (1e-2, 1e2)
#: The extension never goes below ``BOUND[0] * s`` or above ``BOUND[1] * s``.
BOUND = (1e-8, 1e6)
#: Steps added per extension (x10 each).
_STEPS = 10.0 ** np.arange(1, 4)
EDGES = ("", "low", "high")

_ALPHA_AXIS = ("cv_r2_fold", "cv_mae_fold", "train_r2", "train_mae", "alpha_values")


def check_alphas(alphas: Sequence[float] | float | None) -> np.ndarray:
    """The grid ``(alpha,)`` as float64 (``None``: the default relative factors).

    Raises
    ------
    InvalidArgumentError
        An alpha that is not finite and > 0, or no alpha.
    """
    if alphas is None:
        return DEFAULT_FACTORS.copy()
    arr = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if arr.ndim != 1 or len(arr) == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InvalidArgumentError(
            f"expected one or more finite alphas > 0, got {alphas!r}; pass e.g. alphas=[0.1, 1, 10]"
        )
    return arr


_TOL = 1e-9


def edge_flags(alpha_index: np.ndarray, n_alphas: int) -> np.ndarray:
    """``"low"``, ``"high"`` or ``""`` for each chosen index (any shape); ``""`` for one alpha."""
    flags = np.full(alpha_index.shape, "", dtype=object)
    if n_alphas >= 2:
        flags[alpha_index == 0] = "low"
        flags[alpha_index == n_alphas - 1] = "high"
    return flags.astype(str)


def spectrum_range(mat: np.ndarray) -> np.ndarray:
    """``[lambda_min, lambda_max]`` of a symmetric PSD ``mat (m, m)``: its largest eigenvalue and
    its smallest one above the rank tolerance ``lambda_max * m * eps`` (as ``matrix_rank``);
    NaN for a zero matrix."""
    lam = np.linalg.eigvalsh(mat)
    top = float(lam[-1]) if len(lam) else 0.0
    if not top > 0:
        return np.array([np.nan, np.nan])
    return np.array([float(lam[lam > top * len(lam) * np.finfo(np.float64).eps][0]), top])


def primal_spectrum(
    n: np.ndarray, mx: np.ndarray, cxx: np.ndarray, standardize: bool
) -> np.ndarray:
    """:func:`spectrum_range` of all rows' centred co-moments ``C`` (of their z-scores when
    ``standardize``), from per-fold moments ``n (k,)``, ``mx (k, d)``, ``cxx (k, d, d)``."""
    from actstore.analysis._ridge import std_scale

    n_tot = float(n.sum())
    mean = (n[:, None] * mx).sum(axis=0) / n_tot
    dx = mx - mean
    c = cxx.sum(axis=0) + (dx * n[:, None]).T @ dx
    if standardize:
        sc = std_scale(np.diagonal(c) / n_tot, mean, n_tot)
        c = c / np.outer(sc, sc)
    return spectrum_range(c)


def _lattice(factors: np.ndarray) -> np.ndarray:
    """Integer ``k`` of grid factors ``10 ** (k / PER_DECADE)`` (rounded)."""
    return np.round(np.log10(factors) * PER_DECADE).astype(np.int64)


def _spectrum_factors(out: dict[str, np.ndarray], factors: np.ndarray) -> np.ndarray:
    """Lattice factors missing from ``factors`` for the grid to reach every layer's spectrum
    (``SPECTRUM_REACH`` times its smallest and largest eigenvalue), within :data:`BOUND`."""
    scale, spec = out["data_scale"], out["eig_range"]  # (L,), (L, 2)
    ok = (scale > 0) & np.isfinite(scale) & np.isfinite(spec).all(axis=1) & (spec[:, 0] > 0)
    if not ok.any():
        return np.empty(0)
    lo = max(BOUND[0], float((SPECTRUM_REACH[0] * spec[ok, 0] / scale[ok]).min()))
    hi = min(BOUND[1], float((SPECTRUM_REACH[1] * spec[ok, 1] / scale[ok]).max()))
    k_lo = int(np.ceil(np.log10(BOUND[0]) * PER_DECADE - 1e-9))
    k_lo = max(k_lo, int(np.floor(np.log10(lo) * PER_DECADE + 1e-9)))
    k_hi = min(
        int(np.floor(np.log10(BOUND[1]) * PER_DECADE + 1e-9)),
        int(np.ceil(np.log10(hi) * PER_DECADE - 1e-9)),
    )
    have = set(_lattice(factors).tolist())
    ks = [k for k in range(k_lo, k_hi + 1) if k not in have]
    ks = [k for k in ks if k < min(have) or k > max(have)]  # only beyond the current ends
    return 10.0 ** (np.asarray(ks, dtype=np.float64) / PER_DECADE)


def _merge(old: dict[str, np.ndarray], new: dict[str, np.ndarray], factors: np.ndarray) -> None:
    """Join ``new`` (the extra alphas) into ``old`` in place, sorted by factor; the better choice
    per (layer, column) keeps its coefficients."""
    from actstore.analysis._ridge import fold_mean

    a_old = old["alpha_values"].shape[-1]
    for key in _ALPHA_AXIS:
        old[key] = np.concatenate([old[key], new[key]], axis=-1)
    order = np.argsort(factors, kind="stable")
    for key in _ALPHA_AXIS:
        old[key] = old[key][..., order]
    mean = np.nan_to_num(fold_mean(old["cv_r2_fold"], axis=1), nan=-np.inf)  # (L, t, A)
    best = np.argmax(mean, axis=-1)  # (L, t), in sorted order
    from_new = order[best] >= a_old
    old["coef"] = np.where(from_new[..., None], new["coef"], old["coef"])
    old["intercept"] = np.where(from_new, new["intercept"], old["intercept"])
    old["alpha_index"] = best


def search_alphas(
    run: Callable[[np.ndarray], dict[str, np.ndarray]],
    factors: np.ndarray,
    *,
    relative: bool,
    extend: bool = True,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run the engine on ``factors`` and extend the grid while layers choose an end of it.

    Parameters
    ----------
    run : the engine for a grid of factors -> its output dict (``alpha_values (layer, A)``,
        ``data_scale (layer,)``, ``alpha_index (layer, t)``, ...).
    factors : (A,) the initial grid: absolute alphas, or factors of each layer's scale when
        ``relative``.
    extend : False keeps the grid as given (still flagged).

    Returns
    -------
    (out, factors)
        The merged output, sorted by alpha, with ``alpha_at_edge (layer, t)`` added, and the
        final grid (A',).
    """
    factors = np.sort(np.asarray(factors, dtype=np.float64))
    out = run(factors)
    if relative and extend and len(factors) >= 2:
        extra = _spectrum_factors(out, factors)
        if len(extra):
            _merge(out, run(extra), np.concatenate([factors, extra]))
            factors = np.sort(np.concatenate([factors, extra]))
    while extend and len(factors) >= 2:
        scale = out["data_scale"].copy()  # (L,)
        scale[~(scale > 0)] = 1.0  # rows that do not vary: the grid is absolute there
        mult = scale if relative else np.ones_like(scale)
        choice = out["alpha_index"][:, 0]
        has_cv = np.isfinite(out["cv_r2_fold"][:, :, 0]).any(axis=(1, 2))
        new: list[float] = []
        for end, sign in ((0, -1.0), (len(factors) - 1, 1.0)):
            layers = has_cv & (choice == end)
            if not layers.any():
                continue
            cand = factors[end] * _STEPS**sign  # (3,)
            lo = BOUND[0] * scale[layers] / mult[layers] * (1 - _TOL)
            hi = BOUND[1] * scale[layers] / mult[layers] * (1 + _TOL)
            ok = [c for c in cand if ((c >= lo) & (c <= hi)).any()]
            edge = BOUND[0] if sign < 0 else BOUND[1]
            if relative and len(ok) < len(cand) and not np.isclose([factors[end], *ok], edge).any():
                ok.append(edge)  # a grid off the x10 lattice of the bound still reaches it
            new.extend(ok)
        if not new:
            break
        extra = np.asarray(new)
        _merge(out, run(extra), np.concatenate([factors, extra]))
        factors = np.sort(np.concatenate([factors, extra]))
    out["alpha_at_edge"] = edge_flags(out["alpha_index"], len(factors))
    return out, factors
