"""How activations are cut into shards (files) and inner chunks (compression units).

The rule
--------
* A **shard** is one block of ``block_size`` prompts x all layers x all tokens x ``d_model``:
  the unit one writer produces after one batch of forward passes, written whole, exactly once.
  ``block_size`` is chosen so a shard holds about :data:`TARGET_SHARD_BYTES` (tens to a few hundred
  MB: few files, which clusters with inode quotas need), never more prompts than the set has.
* An **inner chunk** is ``chunk_prompts`` prompts x **one** layer x all tokens x ``d_model``, about
  :data:`TARGET_CHUNK_BYTES` (1 MiB) uncompressed; ``chunk_prompts`` divides ``block_size``.
  Reading one layer of many prompts (probe fitting) touches only that layer's chunks, contiguous in
  each shard; reading one prompt's all layers (detection) touches ``n_layers`` chunks of ~1 MiB.
* A **read chunk** (the dask chunk of :func:`actstore.open`, and the chunk of per-prompt metadata
  and derived variables along ``prompt``) is ``read_prompts`` prompts x one layer, a multiple of
  ``block_size`` holding about :data:`TARGET_READ_BYTES` of one layer, so dask graphs stay small.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TARGET_CHUNK_BYTES",
    "TARGET_READ_BYTES",
    "TARGET_SHARD_BYTES",
    "Layout",
    "choose_layout",
]

TARGET_SHARD_BYTES = 128 * 2**20
TARGET_CHUNK_BYTES = 2**20
TARGET_READ_BYTES = 32 * 2**20


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Resolved shard/chunk layout of a prompt set."""

    block_size: int
    chunk_prompts: int
    n_blocks: int
    read_prompts: int

    def shard_shape(self, n_layers: int, n_tokens: int, d_model: int) -> tuple[int, int, int, int]:
        return (self.block_size, n_layers, n_tokens, d_model)

    def chunk_shape(self, n_tokens: int, d_model: int) -> tuple[int, int, int, int]:
        return (self.chunk_prompts, 1, n_tokens, d_model)


def choose_layout(
    *,
    n_prompts: int,
    n_layers: int,
    n_tokens: int,
    d_model: int,
    itemsize: int,
    block_size: int | None = None,
) -> Layout:
    """Pick ``block_size`` (prompts per shard) and ``chunk_prompts`` (prompts per inner chunk)."""
    per_prompt_layer = n_tokens * d_model * itemsize
    target_cp = max(1, round(TARGET_CHUNK_BYTES / per_prompt_layer))
    if block_size is None:
        block_size = max(1, round(TARGET_SHARD_BYTES / (per_prompt_layer * n_layers)))
        block_size = min(block_size, n_prompts)
        if 4 * target_cp <= block_size < n_prompts:
            block_size -= block_size % target_cp  # 1 MiB inner chunks tile the shard (<25% smaller)
    block_size = int(block_size)
    # the inner chunk must tile the shard: the largest divisor of block_size up to the target
    chunk_prompts = max(d for d in range(1, min(target_cp, block_size) + 1) if block_size % d == 0)
    n_blocks = -(-n_prompts // block_size)
    k = max(1, round(TARGET_READ_BYTES / (per_prompt_layer * block_size)))
    read_prompts = min(k, n_blocks) * block_size
    return Layout(
        block_size=block_size,
        chunk_prompts=chunk_prompts,
        n_blocks=n_blocks,
        read_prompts=read_prompts,
    )
