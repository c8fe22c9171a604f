"""The shard/chunk rule: shards of ~128 MiB, inner chunks of ~1 MiB that tile them."""

from __future__ import annotations

import pytest

from actstore.store import choose_layout


@pytest.mark.parametrize(
    ("p", "L", "t", "d", "item"),
    [
        (500, 7, 32, 1024, 2),  # the benchmark shape
        (10_000, 64, 64, 5120, 2),  # Qwen2.5-32B, 64 tokens
        (1000, 8, 16, 64, 4),  # tiny model
        (3, 2, 5, 8, 2),  # fewer prompts than one block
    ],
)
def test_layout_rule(p, L, t, d, item) -> None:
    lay = choose_layout(n_prompts=p, n_layers=L, n_tokens=t, d_model=d, itemsize=item)
    per_prompt = L * t * d * item
    shard = lay.block_size * per_prompt
    chunk = lay.chunk_prompts * t * d * item
    assert 1 <= lay.block_size <= p
    assert lay.block_size % lay.chunk_prompts == 0
    assert lay.read_prompts % lay.block_size == 0
    assert lay.n_blocks == -(-p // lay.block_size)
    if lay.block_size < p:  # the set is big enough to fill shards
        assert 64 * 2**20 <= shard <= 256 * 2**20
    if lay.chunk_prompts < lay.block_size:
        assert 0.5 * 2**20 <= chunk <= 2 * 2**20


def test_explicit_block_size_is_kept() -> None:
    lay = choose_layout(n_prompts=100, n_layers=2, n_tokens=8, d_model=16, itemsize=2, block_size=7)
    assert lay.block_size == 7
    assert lay.chunk_prompts == 7
    assert lay.n_blocks == 15
