"""The extraction plan: what a run will do, computed without loading any weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from actstore.extractors._batching import Batch

__all__ = ["ExtractionPlan", "human_bytes", "summarize_plan"]

_ITEMSIZE = {"bfloat16": 2, "float16": 2, "float32": 4}


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


@dataclass(frozen=True, kw_only=True)
class ExtractionPlan:
    """What an extraction run covers (dims: prompt, layer, token, d_model).

    Attributes
    ----------
    model, set_name, backend, dtype, device : str
    n_layers_total : int
        Depth of the model.
    layers, hooks : tuple
        Captured block indices and stored variables.
    d_model : int
    n_prompts, n_tokens_total, n_tokens_max : int
        Prompt count, real tokens in the set, longest prompt.
    block_size, n_blocks : int
        Prompts per shard and shards in the set.
    shard : tuple of int or None
        ``(i, n)`` of this worker.
    blocks_this_shard, batches_this_shard : int
    padding_fraction_batches : float
        Share of computed token positions that are padding (this worker's batches).
    padding_fraction_storage : float
        Share of stored token positions that are padding (prompts padded to the longest).
    bytes_uncompressed : int
        Size of the activation arrays before compression (padding included).
    bytes_real_tokens : int
        The part of it that holds real tokens.
    max_batch_tokens : int
    batch_window : int
        Blocks per window: prompts of a window's blocks are length-sorted and batched together.
    """

    model: str
    set_name: str
    backend: str
    dtype: str
    device: str
    n_layers_total: int
    layers: tuple[int, ...]
    hooks: tuple[str, ...]
    d_model: int
    n_prompts: int
    n_tokens_total: int
    n_tokens_max: int
    block_size: int
    n_blocks: int
    shard: tuple[int, int] | None
    blocks_this_shard: int
    batches_this_shard: int
    padding_fraction_batches: float
    padding_fraction_storage: float
    bytes_uncompressed: int
    bytes_real_tokens: int
    max_batch_tokens: int
    batch_window: int = 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers)
        d["hooks"] = list(self.hooks)
        d["shard"] = list(self.shard) if self.shard else None
        return d

    def describe(self) -> str:
        """Human-readable multi-line summary."""
        layers = ",".join(str(x) for x in self.layers)
        shard = f"shard {self.shard[0]}/{self.shard[1]}: " if self.shard else ""
        return "\n".join(
            [
                f"model        {self.model} ({self.n_layers_total} layers, d_model {self.d_model})",
                f"capture      {', '.join(self.hooks)} at layers {layers} ({self.backend}, "
                f"{self.dtype}, {self.device})",
                f"prompts      {self.n_prompts} in set {self.set_name!r}: {self.n_tokens_total} "
                f"tokens, longest {self.n_tokens_max}",
                f"blocks       {self.n_blocks} of {self.block_size} prompts; {shard}"
                f"{self.blocks_this_shard} blocks in {self.batches_this_shard} batches "
                f"(max {self.max_batch_tokens} tokens each, windows of {self.batch_window} "
                f"block{'s' if self.batch_window != 1 else ''})",
                f"padding      {self.padding_fraction_batches:.1%} of computed positions, "
                f"{self.padding_fraction_storage:.1%} of stored positions",
                f"size         {human_bytes(self.bytes_uncompressed)} before compression "
                f"({human_bytes(self.bytes_real_tokens)} of real tokens)",
            ]
        )


def summarize_plan(
    *,
    n_tokens: np.ndarray,
    batches: Sequence[Batch],
    layers: Sequence[int],
    hooks: Sequence[str],
    widths: dict[str, int],
    dtype: str,
    **fields: Any,
) -> ExtractionPlan:
    item = _ITEMSIZE[dtype]
    t_max = int(n_tokens.max())
    n_real = int(n_tokens.sum())
    per_token = sum(widths[h] for h in hooks) * len(layers) * item
    computed = sum(b.padded_tokens for b in batches)
    real_in_batches = sum(int(n_tokens[list(b.indices)].sum()) for b in batches)
    return ExtractionPlan(
        layers=tuple(layers),
        hooks=tuple(hooks),
        dtype=dtype,
        n_prompts=len(n_tokens),
        n_tokens_total=n_real,
        n_tokens_max=t_max,
        batches_this_shard=len(batches),
        padding_fraction_batches=(1 - real_in_batches / computed) if computed else 0.0,
        padding_fraction_storage=1 - n_real / (len(n_tokens) * t_max),
        bytes_uncompressed=len(n_tokens) * t_max * per_token,
        bytes_real_tokens=n_real * per_token,
        **fields,
    )
