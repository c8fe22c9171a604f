"""actstore.analysis: probes, detection, plots and reports from a cache (numpy, xarray, dask only).

Never imports torch, transformers or matplotlib at import time (plots import matplotlib inside).
"""

from __future__ import annotations

from actstore.analysis._detect import detect
from actstore.analysis._detect_result import CONTROLS, DetectionResult, token_statistics
from actstore.analysis._logistic import LogisticProbe
from actstore.analysis._mean_diff import MeanDiffProbe
from actstore.analysis._persist import check_compatible, list_probes, load_probes, save_probes
from actstore.analysis._plots import plot_alpha_curves, plot_layer_summary
from actstore.analysis._probes import fit_probes
from actstore.analysis._probeset import ProbeSet
from actstore.analysis._report import write_figures, write_report
from actstore.analysis._ridge import kfold_assign
from actstore.analysis._ridgeprobe import RidgeProbe
from actstore.analysis._tokenplots import plot_heatmaps, plot_traces

__all__ = [
    "CONTROLS",
    "DetectionResult",
    "LogisticProbe",
    "MeanDiffProbe",
    "ProbeSet",
    "RidgeProbe",
    "check_compatible",
    "detect",
    "fit_probes",
    "kfold_assign",
    "list_probes",
    "load_probes",
    "plot_alpha_curves",
    "plot_heatmaps",
    "plot_layer_summary",
    "plot_traces",
    "save_probes",
    "token_statistics",
    "write_figures",
    "write_report",
]
