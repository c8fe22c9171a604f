"""actstore.analysis: probes, detection, plots and reports from a cache (numpy, xarray, dask only).

Never imports torch, transformers or matplotlib at import time (plots import matplotlib inside).
"""

from __future__ import annotations

from actstore.analysis._detect import CONTROLS, DetectionResult, detect, token_statistics
from actstore.analysis._persist import check_compatible, load_probes, save_probes
from actstore.analysis._probes import ProbeSet, RidgeProbe, fit_probes
from actstore.analysis._ridge import kfold_assign

__all__ = [
    "CONTROLS",
    "DetectionResult",
    "ProbeSet",
    "RidgeProbe",
    "check_compatible",
    "detect",
    "fit_probes",
    "kfold_assign",
    "load_probes",
    "save_probes",
    "token_statistics",
]
