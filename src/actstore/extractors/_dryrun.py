"""The plan of ``extract(dry_run=True)``: what the real run would do, loading no weights.

On a new cache the store's layout for these prompts and the automatic batching window; on a
partly written one (a resume) the stored layout and window and the blocks still missing.
"""

from __future__ import annotations

import time
from typing import Any

from actstore.extractors._batching import stored_window
from actstore.extractors._report import ExtractionReport
from actstore.extractors._steps import Planned

__all__ = ["dry_run_report"]


def dry_run_report(p: Planned) -> ExtractionReport:
    """The plan of a ``dry_run``: the store's layout for these prompts, nothing written."""
    from actstore.store import choose_layout

    layout = choose_layout(
        n_prompts=len(p.n_tokens),
        n_layers=len(p.layers),
        n_tokens=p.t_max,
        d_model=p.model.d_model,
        itemsize=4 if p.dtype_name == "float32" else 2,
        block_size=p.config.block_size,
    )
    bs, n, n_blocks = layout.block_size, len(p.n_tokens), layout.n_blocks
    window = p.auto_window(bs, p.widths)
    todo = p.mine(n_blocks, window)
    message = "dry run: nothing loaded or written"
    stored = _stored_set(p)
    if stored is not None:  # a resume: the stored layout and window, the blocks still missing
        spec, bs, n_blocks, missing = stored
        window = stored_window(spec.provenance, p.set_name, p.config.batch_window, n_blocks)
        todo = [b for b in p.mine(n_blocks, window) if b in set(missing)]
        message += (
            f"; resuming prompt set {p.set_name!r}: {len(missing)} of {n_blocks} blocks missing, "
            f"{len(todo)} for this worker (stored batch window {window})"
        )
    blocks = [(b, b * bs, min((b + 1) * bs, n)) for b in todo]
    plan, _ = p.make_plan(bs, n_blocks, blocks, p.widths, window)
    return ExtractionReport(
        status="dry-run",
        plan=plan,
        out=str(p.config.out),
        set_name=p.set_name,
        blocks_total=n_blocks,
        seconds=time.perf_counter() - p.t0,
        message=message,
    )


def _stored_set(p: Planned) -> tuple[Any, int, int, list[int]] | None:
    """``(spec, block_size, n_blocks, missing blocks)`` of the set a dry run would resume."""
    from actstore.errors import StoreNotFoundError
    from actstore.store import open_cache

    options = p.config.storage_options
    try:
        cache = open_cache(
            str(p.config.out), mode="r", storage_options=None if options is None else dict(options)
        )
    except StoreNotFoundError:
        return None
    if p.set_name not in cache.prompt_sets:
        return None
    info = cache.set_info(p.set_name)
    if not info.get("ready"):
        return None
    layout = info["layout"]
    return (
        cache.spec(p.set_name),
        int(layout["block_size"]),
        int(layout["n_blocks"]),
        cache.missing_blocks(p.set_name),
    )
