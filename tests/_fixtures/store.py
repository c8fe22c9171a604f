"""Synthetic prompt sets and caches for store tests (and for any area that needs a small cache).

``make_synthetic(...)`` returns a spec, metadata and activations built from a seed; the fixture
``synthetic_cache`` writes one complete bfloat16 prompt set ``"arith"`` to a temporary directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actstore.store import (
    PromptSetMetadata,
    PromptSetSpec,
    create_cache,
    numpy_dtype,
)


@dataclass
class Synthetic:
    spec: PromptSetSpec
    metadata: PromptSetMetadata
    activations: dict[str, np.ndarray]  # hook -> (prompt, layer, token, d_model)


def make_synthetic(
    *,
    n_prompts: int = 23,
    layers: tuple[int, ...] = (1, 4, 6),
    n_tokens: int = 7,
    d_model: int = 16,
    dtype: str = "bfloat16",
    hooks: tuple[str, ...] = ("resid_post",),
    block_size: int | None = 5,
    seed: int = 0,
    fingerprint: dict[str, Any] | None = None,
) -> Synthetic:
    """Ragged prompts (1..n_tokens real tokens), numeric and string labels, two spans."""
    rng = np.random.default_rng(seed)
    nt = rng.integers(1, n_tokens + 1, n_prompts)
    nt[0] = n_tokens  # at least one prompt uses the full width
    token_id = rng.integers(0, 500, (n_prompts, n_tokens))
    token_str = np.array([[f"t{v}" for v in row] for row in token_id], dtype=object)
    pos = np.arange(n_tokens)[None, :]
    spans = {
        "answer": pos == (nt[:, None] - 1),
        "operands": (pos >= 1) & (pos < 3) & (pos < nt[:, None]),
    }
    x = rng.integers(0, 10, n_prompts)
    labels = {
        "value": (x * 3).astype(float),
        "x": x,
        "template": np.array([["times", "plus"][i % 2] for i in range(n_prompts)]),
    }
    spec = PromptSetSpec(
        n_prompts=n_prompts,
        n_tokens_max=n_tokens,
        layers=layers,
        d_model=d_model,
        dtype=dtype,
        hooks=hooks,
        block_size=block_size,
        fingerprint=fingerprint or {"model": "sha256:abc", "tokenizer": "t1", "prompts": "p1"},
        provenance={"command": "pytest"},
    )
    meta = PromptSetMetadata(
        text=[f"prompt {i} ünïcode" for i in range(n_prompts)],
        n_tokens=nt,
        token_id=token_id,
        token_str=token_str,
        labels=labels,
        span_masks=spans,
    )
    acts = {}
    for h in hooks:
        a = rng.standard_normal((n_prompts, len(layers), n_tokens, d_model)).astype(np.float32)
        a *= (pos < nt[:, None])[:, None, :, None]  # padding tokens hold zeros
        acts[h] = (a * 3).astype(numpy_dtype(dtype))
    return Synthetic(spec=spec, metadata=meta, activations=acts)


def write_synthetic(url: str | Path, syn: Synthetic, name: str = "arith", blocks=None, **kw: Any):
    """Create the cache and write *blocks* (default: all) of *syn* as prompt set *name*."""
    cache = create_cache(url, **kw)
    writer = cache.prompt_set_writer(name, syn.spec, syn.metadata)
    for b in range(writer.n_blocks) if blocks is None else blocks:
        start, stop = writer.block_range(b)
        writer.write_block(b, {h: a[start:stop] for h, a in syn.activations.items()})
    return cache, writer


@pytest.fixture
def synthetic_cache(tmp_path: Path) -> tuple[Path, Synthetic]:
    """A complete cache with one bfloat16 prompt set ``"arith"`` (23 prompts, layers 1,4,6)."""
    syn = make_synthetic()
    path = tmp_path / "cache.zarr"
    write_synthetic(path, syn)
    return path, syn
