"""Synthetic categorical prompt sets for the classification-probe tests (planted class signal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from tests._fixtures.analysis import write_set

WORDS = np.array(["add", "mul", "sub", "div"])


def class_set(
    *, n: int, d_model: int = 12, n_classes: int = 2, n_layers: int = 2, seed: int = 0,
    signal: float = 0.8, n_templates: int = 6, n_tokens_max: int = 5,
) -> xr.Dataset:  # fmt: skip
    """Labels ``label`` (ints), ``word`` (strings) and ``template`` (groups); layer 0 carries the
    class at the last token along random class directions (plus noise), layer 1 is noise."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % n_classes
    rng.shuffle(label)
    acts = (rng.normal(size=(n, n_layers, n_tokens_max, d_model)) + 2.0).astype(np.float32)
    n_tokens = rng.integers(2, n_tokens_max + 1, size=n).astype(np.int32)
    centres = rng.normal(size=(n_classes, d_model)) * signal
    acts[np.arange(n), 0, n_tokens - 1] += centres[label].astype(np.float32)
    t = ds_tokens = n_tokens_max
    ds = xr.Dataset(
        {
            "resid_post": (("prompt", "layer", "token", "d_model"), acts),
            "n_tokens": (("prompt",), n_tokens),
            "label": (("prompt",), label.astype(np.int64)),
            "word": (("prompt",), WORDS[label]),
            "template": (("prompt",), np.array([f"tpl{i % n_templates}" for i in range(n)])),
            "value": (("prompt",), label * 2.0 + rng.normal(size=n)),
            "text": (("prompt",), np.array([f"p{i}" for i in range(n)])),
            "token_id": (("prompt", "token"), np.ones((n, t), np.int32)),
            "token_str": (("prompt", "token"), np.full((n, ds_tokens), "x")),
        },
        coords={"prompt": np.arange(n), "layer": np.arange(n_layers) * 2 + 1},
    )
    ds.attrs["actstore"] = {"fingerprint": {"model": "m"}}
    return ds


def class_cache(path: Path, ds: xr.Dataset, name: str = "ops") -> Any:
    return write_set(path, name, ds, block_size=16)


def last_rows(ds: xr.Dataset, layer_index: int) -> np.ndarray:
    n = ds.sizes["prompt"]
    last = ds["n_tokens"].values - 1
    return ds["resid_post"].values[np.arange(n), layer_index, last].astype(np.float64)
