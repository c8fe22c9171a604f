"""actstore.analysis: probes, detection, plots and reports from a cache (numpy, xarray, dask only).

- Probes: :func:`fit_probes` fits one probe per layer from a cache and returns a :class:`ProbeSet`;
  :func:`save_probes`, :func:`load_probes`, :func:`list_probes` keep them. :class:`RidgeProbe`,
  :class:`LogisticProbe` and :class:`MeanDiffProbe` are the in-memory estimators
  (scikit-learn's ``fit`` / ``predict`` API) for activations you already hold.
- Detection: :func:`detect` applies probes at every real token and returns a
  :class:`DetectionResult` (statistics against controls and chance).
- Figures and reports: :func:`write_figures`, :func:`write_report`, and the single figures
  :func:`plot_layer_summary`, :func:`plot_alpha_curves`, :func:`plot_heatmaps`, :func:`plot_traces`.

Never imports torch, transformers or matplotlib at import time (plots import matplotlib inside).
Each public name is imported on first use (PEP 562 ``__getattr__``): ``import actstore.analysis``
costs almost nothing, and ``from actstore.analysis import fit_probes`` imports what a probe fit
needs (xarray, dask), not scikit-learn or ``scipy.stats`` (``docs/read-path.md``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and the API reference (read statically)
    from actstore.analysis._detect import detect
    from actstore.analysis._detect_result import DetectionResult
    from actstore.analysis._logistic import LogisticProbe
    from actstore.analysis._mean_diff import MeanDiffProbe
    from actstore.analysis._persist import list_probes, load_probes, save_probes
    from actstore.analysis._plots import plot_alpha_curves, plot_layer_summary
    from actstore.analysis._probes import fit_probes
    from actstore.analysis._probeset import ProbeSet
    from actstore.analysis._report import write_figures, write_report
    from actstore.analysis._ridgeprobe import RidgeProbe
    from actstore.analysis._tokenplots import plot_heatmaps, plot_traces

#: Public name (each of ``__all__``) -> the private module defining it, imported on first access.
_WHERE = {
    "DetectionResult": "_detect_result",
    "LogisticProbe": "_logistic",
    "MeanDiffProbe": "_mean_diff",
    "ProbeSet": "_probeset",
    "RidgeProbe": "_ridgeprobe",
    "detect": "_detect",
    "fit_probes": "_probes",
    "list_probes": "_persist",
    "load_probes": "_persist",
    "plot_alpha_curves": "_plots",
    "plot_heatmaps": "_tokenplots",
    "plot_layer_summary": "_plots",
    "plot_traces": "_tokenplots",
    "save_probes": "_persist",
    "write_figures": "_report",
    "write_report": "_report",
}

__all__ = [
    "DetectionResult",
    "LogisticProbe",
    "MeanDiffProbe",
    "ProbeSet",
    "RidgeProbe",
    "detect",
    "fit_probes",
    "list_probes",
    "load_probes",
    "plot_alpha_curves",
    "plot_heatmaps",
    "plot_layer_summary",
    "plot_traces",
    "save_probes",
    "write_figures",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
