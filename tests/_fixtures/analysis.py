"""Synthetic prompt sets for the analysis tests: a known direction encodes a value at known tokens.

``planted_set`` builds an ``xarray.Dataset`` that follows the store contract (variable names and
dims); ``write_set`` writes one through the store API so tests also run against real caches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

SIGNAL_LAYER = 15
LAYERS = (3, 9, 15, 21)
PAD_VALUE = 50.0  # padding rows hold garbage: any use of them shows in the results


def planted_set(
    *,
    n_prompts: int,
    kind: str,
    d_model: int = 32,
    n_tokens_max: int = 24,
    layers: tuple[int, ...] = LAYERS,
    signal_layer: int = SIGNAL_LAYER,
    seed: int = 0,
    noise: float = 0.0005,
    direction_seed: int = 1234,
    model: str = "synthetic-model",
) -> xr.Dataset:
    """One prompt set with a value planted along a fixed unit direction at ``signal_layer``.

    ``kind="train"``: label ``value`` in [4, 361], planted at the last real token.
    ``kind="test"``: label ``v_squared``, planted at one token marked by the span ``v_squared``;
    every other token of the signal layer carries a random in-range value along the same direction
    (distractors), so only the planted token matches the label.
    """
    rng = np.random.default_rng(seed)
    u = np.random.default_rng(direction_seed).normal(size=d_model)
    u /= np.linalg.norm(u)
    n_tokens = rng.integers(n_tokens_max - 6, n_tokens_max + 1, size=n_prompts).astype(np.int32)
    lo, hi = 4.0, 361.0
    values = rng.uniform(lo, hi, size=n_prompts).round(1)
    n_layers = len(layers)
    acts = rng.normal(size=(n_prompts, n_layers, n_tokens_max, d_model)).astype(np.float32)
    acts += 3.0  # a large common mean, as residual streams have
    li = layers.index(signal_layer)
    span = np.zeros((n_prompts, 1, n_tokens_max), dtype=bool)
    scale = lambda v: (v - 180.0) / 60.0  # noqa: E731
    for p in range(n_prompts):
        n = int(n_tokens[p])
        pos = n - 1 if kind == "train" else int(rng.integers(1, n - 1))
        # Remove the noise along u at the signal layer, then write the values along it.
        block = acts[p, li, :n]
        block -= np.outer(block @ u, u).astype(np.float32)
        along = rng.uniform(lo, hi, size=n)
        along[pos] = values[p]
        block += np.outer(scale(along) + noise * rng.normal(size=n), u * 12.0).astype(np.float32)
        acts[p, :, n:] = PAD_VALUE
        span[p, 0, pos] = True
    token_str = np.array(
        [
            [f"t{j}" if j < n_tokens[p] else "" for j in range(n_tokens_max)]
            for p in range(n_prompts)
        ]
    )
    for p in range(n_prompts):
        token_str[p, np.flatnonzero(span[p, 0])[0]] = "<v>"
    label = "value" if kind == "train" else "v_squared"
    span_name = "answer" if kind == "train" else "v_squared"
    fp = {"model": model, "prompts": f"{kind}-{seed}", "dtype": "float32", "layers": list(layers)}
    return xr.Dataset(
        {
            "resid_post": (("prompt", "layer", "token", "d_model"), acts),
            "n_tokens": (("prompt",), n_tokens),
            label: (("prompt",), values),
            "text": (("prompt",), np.array([f"prompt {p}" for p in range(n_prompts)])),
            "token_str": (("prompt", "token"), token_str),
            "token_id": (
                ("prompt", "token"),
                np.where(token_str != "", 1, -1).astype(np.int32),
            ),
            "span_mask": (("prompt", "span", "token"), span),
        },
        coords={
            "prompt": np.arange(n_prompts, dtype=np.int64),
            "layer": np.asarray(layers, dtype=np.int32),
            "token": np.arange(n_tokens_max, dtype=np.int32),
            "span": [span_name],
        },
        attrs={"actstore": {"fingerprint": fp}},
    )


def random_set(
    *, n: int, d_model: int, n_layers: int = 2, n_tokens_max: int = 4, seed: int = 0
) -> xr.Dataset:
    """Well-conditioned random rows, a linear target at the last token (sklearn comparisons)."""
    rng = np.random.default_rng(seed)
    acts = (rng.normal(size=(n, n_layers, n_tokens_max, d_model)) * 2 + 5).astype(np.float32)
    n_tokens = rng.integers(2, n_tokens_max + 1, size=n).astype(np.int32)
    w = rng.normal(size=d_model)
    last = acts[np.arange(n), 0, n_tokens - 1].astype(np.float64)
    y = last @ w + rng.normal(size=n) + 10
    return xr.Dataset(
        {
            "resid_post": (("prompt", "layer", "token", "d_model"), acts),
            "n_tokens": (("prompt",), n_tokens),
            "value": (("prompt",), y),
        },
        coords={"prompt": np.arange(n), "layer": np.arange(n_layers) * 2 + 1},
    )


def write_set(
    url: str | Path, name: str, ds: xr.Dataset, *, block_size: int = 16, dtype: str = "float32"
) -> Any:
    """Write a synthetic prompt set into a real cache through the store API; returns the Cache."""
    from actstore import store

    cache = store.create_cache(str(url))
    layers = tuple(int(v) for v in ds["layer"].values)
    spans = [str(s) for s in ds["span"].values] if "span" in ds.coords else []
    spec = store.PromptSetSpec(
        n_prompts=ds.sizes["prompt"],
        n_tokens_max=ds.sizes["token"],
        layers=layers,
        d_model=ds.sizes["d_model"],
        dtype=dtype,
        block_size=block_size,
        fingerprint=ds.attrs["actstore"]["fingerprint"],
    )
    labels = {
        str(k): ds[k].values
        for k in ds.data_vars
        if ds[k].dims == ("prompt",) and k not in ("n_tokens", "text")
    }
    meta = store.PromptSetMetadata(
        text=[str(t) for t in ds["text"].values],
        n_tokens=ds["n_tokens"].values,
        token_id=ds["token_id"].values,
        token_str=ds["token_str"].values,
        labels=labels,
        span_masks={s: ds["span_mask"].values[:, i] for i, s in enumerate(spans)},
    )
    writer = cache.prompt_set_writer(name, spec, meta)
    acts = ds["resid_post"].values.astype(store.numpy_dtype(dtype))
    for b in range(writer.n_blocks):
        start, stop = writer.block_range(b)
        writer.write_block(b, {"resid_post": acts[start:stop]})
    return cache


@pytest.fixture(scope="session")
def planted_pair() -> tuple[xr.Dataset, xr.Dataset]:
    """(train, test) planted prompt sets, 120 prompts each, in memory."""
    return (
        planted_set(n_prompts=120, kind="train", seed=1),
        planted_set(n_prompts=120, kind="test", seed=2),
    )


@pytest.fixture(scope="session")
def planted_cache(tmp_path_factory: pytest.TempPathFactory, planted_pair) -> Path:
    """A real cache holding the planted pair as prompt sets ``arithmetic`` and ``physics``."""
    url = tmp_path_factory.mktemp("planted") / "planted.zarr"
    train, test = planted_pair
    write_set(url, "arithmetic", train)
    write_set(url, "physics", test)
    return url
