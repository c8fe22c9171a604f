"""The last step of :func:`~actstore.extractors.extract`: load the model, write the blocks."""

from __future__ import annotations

import shlex
import sys
import time
from typing import Any

from actstore.extractors._loop import load_backend, run_batches
from actstore.extractors._report import ExtractionReport
from actstore.extractors._steps import (
    Planned,
    Resumed,
    finished_report,
    spec_for,
    writer_window,
)

__all__ = ["run_extraction"]


def run_extraction(p: Planned, r: Resumed) -> ExtractionReport:
    """Step 3: generate continuations if asked, load the backend, write this worker's blocks.

    The cache is created (or opened, for a new set) only once the model has loaded and its widths
    match the plan, so a failure to load leaves no empty cache behind; a resumed set is written
    through the writer :func:`resume_extraction` opened, without a second metadata scan. The
    settings (:meth:`ExtractConfig.to_dict`) are recorded in a new set's provenance as
    ``extract_config``.

    Parameters
    ----------
    p, r
        What :func:`~actstore.extractors._steps.plan_extraction` and
        :func:`~actstore.extractors._steps.resume_extraction` returned (``r.report`` is None).

    Returns
    -------
    ExtractionReport
        ``status="written"``, or ``"complete"`` when another worker finished first.

    Raises
    ------
    ModelLoadError, ExtractionError, DiskFullError
        Weights that do not fit the plan, out of memory or non-finite activations, a full disk
        (the cache stays resumable).
    """
    import torch

    from actstore.extractors._genflow import generation_phase, stored_tokens
    from actstore.extractors._torchutil import library_versions
    from actstore.store import create_cache

    cfg, out = p.config, str(p.config.out)
    gen_model, writer = None, r.writer
    if p.generate is not None and not r.stored_ids:
        p.tok, r.metadata, gen_model = generation_phase(
            model_dir=p.model_dir,
            torch_dtype=p.torch_dtype,
            dev=p.dev,
            tokenizer=p.tokenizer,
            tok=p.tok,
            prompts=p.prompt_set,
            cfg=p.generate,
            t_max=p.t_max,
            eos=r.eos,
            max_batch_tokens=cfg.max_batch_tokens,
            keep_model=cfg.backend == "hf",
            verbose=cfg.progress != "none",
        )
        p.n_tokens = p.tok.n_tokens
    backend_obj = load_backend(
        cfg.backend,
        p.model_dir,
        p.layers,
        p.backend_hooks,
        p.torch_dtype,
        p.dev,
        p.model.n_layers,
        p.tokenizer,
        model=gen_model,
    )
    try:
        # the widths the blocks give must be the planned ones (the dry run's), and the token ids
        # must fit the embedding: checked before anything is created, so no cache claims a width
        # it does not hold
        _check_measured(backend_obj, p)
        widths = dict(backend_obj.widths)
        if writer is None:  # a resumed set has its writer: the cache is not opened again
            storage_options = None if cfg.storage_options is None else dict(cfg.storage_options)
            cache = create_cache(out, storage_options=storage_options)
            provenance = {
                "model_path": p.model_dir,
                "config": p.model.raw,
                "device": str(p.dev),
                "cuda_device": torch.cuda.get_device_name(p.dev) if p.dev.type == "cuda" else None,
                "dtype": p.dtype_name,
                "bos": r.fingerprint["bos"],
                "library_versions": library_versions(),
                "command": cfg.command or _default_command(),
                "max_batch_tokens": cfg.max_batch_tokens,
                "weights_fingerprint_covers": "config.json, weight file names and sizes, "
                "safetensors index, first and last MiB of each weight file",
                "extract_config": cfg.to_dict(),
                **backend_obj.provenance,
            }
            provenance["batch_window"] = _new_window(p, spec_for(p, r.fingerprint, widths, {}))
            spec = spec_for(p, r.fingerprint, widths, provenance)
            writer = cache.prompt_set_writer(p.set_name, spec, r.metadata)
            if p.generate is not None:  # another worker may have stored its continuation first
                p.tok = stored_tokens(cache, p.set_name, p.tok.pad_id)
                p.n_tokens = p.tok.n_tokens
            if writer.is_complete():  # a tlens re-run (widths needed the model first)
                return finished_report(p, writer, widths)  # type: ignore[return-value]
        # the stored window (1 for a set from before windows), whoever created the set
        window = writer_window(writer, cfg.batch_window)
        warn_batch_budget(writer, cfg.max_batch_tokens)
        missing = set(writer.missing_blocks())
        todo = [b for b in p.mine(writer.n_blocks, window) if b in missing]
        if not todo:
            return finished_report(p, writer, widths)  # type: ignore[return-value]
        blocks = [(b, *writer.block_range(b)) for b in todo]
        plan, batches = p.make_plan(writer.block_size, writer.n_blocks, blocks, widths, window)
        stats = run_batches(
            backend_obj=backend_obj,
            writer=writer,
            batches=batches,
            blocks=blocks,
            tok=p.tok,
            layer_idx=p.layers,
            hook_vars=p.hook_vars,
            widths=widths,
            torch_dtype=p.torch_dtype,
            progress={"auto": None, "none": False}.get(cfg.progress, cfg.progress),
            max_batch_tokens=cfg.max_batch_tokens,
            window=window,
        )
    finally:
        backend_obj.close()
    complete = writer.is_complete()
    left = len(writer.missing_blocks())
    msg = f"wrote {len(todo)} blocks of prompt set {p.set_name!r} to {out}" + (
        "; the set is complete" if complete else f"; {left} blocks left for other shards"
    )
    return ExtractionReport(
        status="written",
        plan=plan,
        out=out,
        set_name=p.set_name,
        blocks_written=len(todo),
        blocks_total=writer.n_blocks,
        complete=complete,
        tokens=stats["tokens"],
        seconds=time.perf_counter() - p.t0,
        bytes_written=stats["bytes"],
        message=msg,
    )


def _check_measured(backend_obj: Any, p: Planned) -> None:
    """Refuse when the loaded model disagrees with what config.json (and so the plan) says."""
    from actstore.errors import ModelLoadError

    backend = p.config.backend
    for var, want in p.widths.items():
        got = backend_obj.widths.get(var)
        if got != want:
            other = "tlens" if backend == "hf" else "hf"
            raise ModelLoadError(
                f"expected the decoder blocks of {p.model_dir!r} to give {var} of config.json's "
                f"width {p.model.d_model} (hidden_size), got width {got}; nothing was written: "
                f"this layout is not supported by --backend {backend}, try --backend {other}"
            )
    n_vocab = getattr(backend_obj, "vocab_size", None)
    top = max((max(row) for row in p.tok.ids if len(row)), default=-1)
    top = max(top, int(p.tok.pad_id))  # padding positions are embedded too
    if n_vocab is not None and top >= n_vocab:
        raise ModelLoadError(
            f"expected token ids below the model's {n_vocab} embedding rows, got id {top} from "
            f"the tokenizer in {p.model_dir!r}; nothing was written: use the tokenizer that "
            "belongs to these weights"
        )


def warn_batch_budget(writer: Any, max_batch_tokens: int) -> None:
    """Warn when this run batches with another ``max_batch_tokens`` than the set was created with.

    Allowed (lowering it is the fix for an out-of-memory error), but the blocks written from now
    on are computed in other batches, and a forward pass's last bits depend on its batch: they
    are not bit-identical to an uninterrupted run's, and the set's provenance records only the
    value it was created with.
    """
    import warnings

    stored = writer.spec.provenance.get("max_batch_tokens")
    if stored is None or stored == max_batch_tokens:
        return
    warnings.warn(
        f"prompt set {writer.name!r} was created with --max-batch-tokens {stored}, this run "
        f"uses {max_batch_tokens}: the blocks it writes are batched differently, so their last "
        f"bits may differ from an uninterrupted run's; pass --max-batch-tokens {stored} to keep "
        "every block bit-identical (lower it only after an out-of-memory error)",
        UserWarning,
        stacklevel=2,
    )


def _new_window(p: Planned, spec: Any) -> int:
    """The ``batch_window`` recorded for a new set: from the block size the store will choose."""
    return p.auto_window(spec.layout().block_size, {h: spec.d_model for h in spec.hooks})


def _default_command() -> str:
    return " ".join(shlex.quote(a) for a in sys.argv)
