"""The result of a probe fit: :class:`ProbeSet`, one fitted probe per layer with its metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from actstore.errors import UnknownNameError

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["ArraysDataset", "ProbeSet"]

_ATTR = "actstore_probe"


class _Variable:
    """One variable of an :class:`ArraysDataset`: ``dims`` and ``values``, as xarray names them."""

    __slots__ = ("dims", "values")

    def __init__(self, dims: tuple[str, ...], values: np.ndarray) -> None:
        self.dims, self.values = dims, values


class ArraysDataset:
    """The arguments of an ``xarray.Dataset`` not built yet (a fit need not import xarray).

    Answers what :class:`ProbeSet` reads (``ds[name].values``, ``name in ds``, ``.sizes``,
    ``.attrs``); :meth:`to_xarray` builds the Dataset, exactly as ``xr.Dataset(data_vars,
    coords=coords, attrs=attrs)``.
    """

    def __init__(
        self,
        data_vars: dict[str, tuple[tuple[str, ...], np.ndarray]],
        coords: dict[str, np.ndarray],
        attrs: dict[str, Any],
    ) -> None:
        self.data_vars, self.coords, self.attrs = data_vars, coords, attrs
        self.sizes: dict[str, int] = {k: len(v) for k, v in coords.items()}
        for dims, values in data_vars.values():
            self.sizes.update(zip(dims, np.shape(values), strict=True))

    def __contains__(self, name: object) -> bool:
        return name in self.data_vars or name in self.coords

    def __getitem__(self, name: str) -> _Variable:
        if name in self.coords:
            return _Variable((name,), np.asarray(self.coords[name]))
        dims, values = self.data_vars[name]
        return _Variable(dims, np.asarray(values))

    def to_xarray(self) -> xr.Dataset:
        import xarray as xr

        return xr.Dataset(self.data_vars, coords=self.coords, attrs=self.attrs)


class ProbeSet:
    """One fitted ridge probe per layer, with metrics, controls and lineage.

    Backed by an ``xarray.Dataset`` (``.dataset``) with variables ``coef (layer, d_model)``,
    ``intercept (layer)``, ``alpha (layer)``, ``cv_r2``/``cv_mae``/``train_r2``/``train_mae``
    ``(layer, alpha_grid)``, ``cv_r2_fold (fold, layer, alpha_grid)``, ``alpha_values (layer,
    alpha_grid)`` (the penalties searched: ``alpha_grid`` times ``data_scale (layer)`` for the
    default relative grid, else ``alpha_grid`` itself), ``alpha_at_edge (layer)`` int8 (-1: the
    chosen alpha is the grid's smallest, 1: its largest, 0: interior), and the same with a
    ``control_`` prefix for the probe fitted on shuffled labels. ``.lineage`` is a JSON dict.
    ``.name`` is the name it was saved or loaded under (``probes/NAME`` of a cache, or the file's
    stem), ``None`` for probes never saved: detection names its predictions ``pred_<name>``.
    """

    def __init__(self, dataset: xr.Dataset | ArraysDataset, name: str | None = None) -> None:
        self._data = dataset
        self.name = name

    @property
    def dataset(self) -> xr.Dataset:
        """The probes as an ``xarray.Dataset`` (built on first use after a fit from a cache)."""
        if isinstance(self._data, ArraysDataset):
            self._data = self._data.to_xarray()
        return self._data

    @dataset.setter
    def dataset(self, value: xr.Dataset) -> None:
        self._data = value

    @property
    def default_name(self) -> str:
        """``.name``, else ``TARGET_POSITION`` (the name ``actstore probe fit`` saves under)."""
        if self.name:
            return self.name
        lin = self.lineage
        return f"{lin.get('target', 'probe')}_{lin.get('position', 'last')}"

    @property
    def kind(self) -> str:
        """``ridge``, ``logistic`` or ``mean_diff`` (see ``docs/probes.md``)."""
        return str(self.lineage.get("kind", "ridge"))

    @property
    def lineage(self) -> dict[str, Any]:
        """What was fitted on what: kind, prompt set, target, position, layers, cache and model
        fingerprints, the arguments of the fit, versions (a JSON-ready dict)."""
        return dict(self._data.attrs[_ATTR])

    @property
    def layers(self) -> list[int]:
        """The real layer indices (the ``layer`` coordinate), one probe each."""
        return [int(v) for v in self._data["layer"].values]

    @property
    def d_model(self) -> int:
        """The residual width the probes read (size of the ``d_model`` dimension)."""
        return int(self._data.sizes["d_model"])

    @property
    def has_control(self) -> bool:
        """Whether probes fitted on shuffled labels (``control_*`` variables) are included."""
        return "control_coef" in self._data

    def select_layers(self, layers: Sequence[int]) -> ProbeSet:
        """The same probes restricted to *layers* (each one of ``.layers``), in that order.

        Parameters
        ----------
        layers : sequence of int
            Real layer indices, each one of :attr:`layers`.

        Returns
        -------
        ProbeSet
            A new set over those layers, same name.

        Raises
        ------
        UnknownNameError
            If a layer is not one of :attr:`layers`.
        """
        missing = [int(v) for v in layers if int(v) not in self.layers]
        if missing:
            raise UnknownNameError(
                f"expected layers among the probes' {self.layers}, got {missing}; pick those"
            )
        sub = self.dataset.sel(layer=[int(v) for v in layers])
        return ProbeSet(sub, name=self.name)

    def weights(self, control: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients ``(layer, d_model)`` and intercepts ``(layer,)`` as float64.

        A prediction of layer ``l`` is ``x @ coef[l] + intercept[l]`` for raw activations ``x``
        ``(d_model,)``. For a binary classification probe: the detection score's weights (see
        :mod:`._class_probeset`).

        Parameters
        ----------
        control : bool
            The weights of the shuffled-label control probes instead (see :attr:`has_control`).

        Returns
        -------
        tuple of numpy.ndarray
            ``coef (layer, d_model)`` and ``intercept (layer,)``, float64.

        Raises
        ------
        InvalidArgumentError
            If the probe is a multiclass classifier (no single score per token).
        """
        if self.kind != "ridge":
            from actstore.analysis._class_probeset import detection_weights

            return detection_weights(self.dataset, self.kind, control)
        pre = "control_" if control else ""
        return (
            np.asarray(self._data[pre + "coef"].values, dtype=np.float64),
            np.asarray(self._data[pre + "intercept"].values, dtype=np.float64),
        )

    def metrics(self) -> list[dict[str, Any]]:
        """One row per layer: chosen alpha, held-out R²/MAE, training R², and the control's.

        Classification kinds: held-out accuracy, balanced accuracy, ROC AUC, log-loss.
        """
        if self.kind != "ridge":
            from actstore.analysis._class_probeset import class_metric_rows

            return class_metric_rows(self.dataset)
        ds = self._data
        rows = []
        grid = ds["alpha_values"].values if "alpha_values" in ds else None

        def index(i: int, alpha: float) -> int:
            values = ds["alpha_grid"].values if grid is None else grid[i]
            return int(np.flatnonzero(values == alpha)[0])

        for i, layer in enumerate(self.layers):
            a = index(i, ds["alpha"].values[i])
            row = {
                "layer": layer,
                "alpha": float(ds["alpha"].values[i]),
                "alpha_at_edge": _edge(ds, "alpha_at_edge", i),
                "cv_r2": float(ds["cv_r2"].values[i, a]),
                "cv_mae": float(ds["cv_mae"].values[i, a]),
                "train_r2": float(ds["train_r2"].values[i, a]),
            }
            if self.has_control:
                c = index(i, ds["control_alpha"].values[i])
                row["control_cv_r2"] = float(ds["control_cv_r2"].values[i, c])
                row["control_cv_mae"] = float(ds["control_cv_mae"].values[i, c])
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Lineage, metrics per layer and the CV curves (JSON-ready; no coefficients)."""
        if self.kind != "ridge":
            from actstore.analysis._class_probeset import class_to_dict

            return class_to_dict(self.dataset)
        ds = self._data
        return {
            "lineage": self.lineage,
            "layers": self.metrics(),
            "alpha_grid": [float(a) for a in ds["alpha_grid"].values],
            "alpha_relative": bool(self.lineage.get("alpha_relative", False)),
            "cv_r2_by_alpha": {
                str(layer): [float(v) for v in ds["cv_r2"].values[i]]
                for i, layer in enumerate(self.layers)
            },
        }

    def __repr__(self) -> str:
        lin = self.lineage
        return (
            f"ProbeSet(target={lin.get('target')!r}, prompt_set={lin.get('prompt_set')!r}, "
            f"position={lin.get('position')!r}, layers={self.layers}, d_model={self.d_model})"
        )


_EDGE_CODE = {"low": -1, "": 0, "high": 1}


def _edge(ds: xr.Dataset | ArraysDataset, name: str, i: int) -> str | None:
    """``"low"``/``"high"`` when layer ``i``'s alpha is at an end of its grid, else ``None``."""
    if name not in ds:
        return None
    return {-1: "low", 1: "high"}.get(int(ds[name].values[i]))
