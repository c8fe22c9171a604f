"""The forward loop: load a backend, run the planned batches, hand captures to the writer."""

from __future__ import annotations

from typing import Any

import numpy as np

from actstore.errors import ExtractionError
from actstore.extractors._backend import Backend

__all__ = ["load_backend", "run_batches"]


def load_backend(
    backend: str,
    model_dir: str,
    layers: tuple[int, ...],
    hooks: tuple[str, ...],
    torch_dtype: Any,
    dev: Any,
    n_layers: int,
    tokenizer: Any,
    model: Any = None,
) -> Backend:
    """The :class:`Backend` named *backend* (``"hf"`` or ``"tlens"``), its model loaded."""
    if backend == "hf":
        from actstore.extractors._hf import HFBackend

        return HFBackend(
            model_dir,
            layers=layers,
            hooks=hooks,
            torch_dtype=torch_dtype,
            device=dev,
            n_layers=n_layers,
            model=model,
        )
    from actstore.extractors._tlens import TLensBackend

    return TLensBackend(
        model_dir,
        layers=layers,
        hooks=hooks,
        torch_dtype=torch_dtype,
        device=dev,
        n_layers=n_layers,
        tokenizer=tokenizer,
    )


def run_batches(
    *,
    backend_obj: Any,
    writer: Any,
    batches: list[Any],
    blocks: list[tuple[int, int, int]],
    tok: Any,
    layer_idx: tuple[int, ...],
    hook_vars: tuple[str, ...],
    widths: dict[str, int],
    torch_dtype: Any,
    progress: Any,
    max_batch_tokens: int,
    window: int = 1,
) -> dict[str, int]:
    """Run *batches* (planned in windows of *window* blocks) and write *blocks* through *writer*.

    Returns ``{"tokens": real tokens run through the model, "bytes": uncompressed bytes
    written}``; the tokens include rows of already written blocks that a resumed window computes
    again (and drops).
    """
    import torch

    from actstore.extractors._progress import Progress
    from actstore.extractors._sink import BlockSink

    total_tokens = sum(int(tok.n_tokens[list(b.indices)].sum()) for b in batches)
    prog = Progress(total_tokens, len(blocks), mode=progress) if progress is not False else None
    written = {"bytes": 0}

    def on_block(b: int, nbytes: int) -> None:
        written["bytes"] += nbytes
        if prog is not None:
            prog.add_block(nbytes)

    sink = BlockSink(
        write_block=writer.write_block,
        block_ranges={b: (s, e) for b, s, e in blocks},
        window=window,
        n_tokens=tok.n_tokens,
        hooks=hook_vars,
        layers=layer_idx,
        n_tokens_max=tok.n_tokens_max,
        widths=widths,
        torch_dtype=torch_dtype,
        on_block=on_block,
    )
    if prog is not None:
        prog.queue_depth = sink.queue_depth
    tokens = 0
    ok = False
    try:
        dev = backend_obj.input_device
        for batch in batches:
            ids = torch.full((len(batch.indices), batch.seq_len), tok.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch.indices), batch.seq_len), dtype=torch.long)
            for j, i in enumerate(batch.indices):
                row = tok.ids[i]
                ids[j, : len(row)] = torch.tensor(row, dtype=torch.long)
                mask[j, : len(row)] = 1
            try:
                captured = backend_obj.capture(ids.to(dev), mask.to(dev))
            except Exception as exc:
                from actstore.extractors._torchutil import is_oom

                if is_oom(exc):
                    raise ExtractionError(
                        f"expected the batch to fit in memory, got out of memory with "
                        f"{batch.padded_tokens} padded tokens (--max-batch-tokens "
                        f"{max_batch_tokens}); re-run with a smaller --max-batch-tokens, e.g. "
                        f"{max(1, max_batch_tokens // 2)}: finished blocks are kept"
                    ) from exc
                raise
            sink.submit(batch, captured)
            n = int(np.sum(tok.n_tokens[list(batch.indices)]))
            tokens += n
            if prog is not None:
                prog.add_tokens(n)
        ok = True
    finally:
        sink.close(abort=not ok)
        if prog is not None:
            prog.close()
    return {"tokens": tokens, "bytes": written["bytes"]}
