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
"""

from __future__ import annotations

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
