"""The first two steps of :func:`~actstore.extractors.extract`: plan, then resume.

:func:`plan_extraction` checks everything that needs no weights (model directory, hooks, layers,
prompts, tokenization, positions) and returns a :class:`Planned`; :func:`resume_extraction`
compares it with what the cache already holds and either finishes (nothing left to do for this
worker) or hands :func:`~actstore.extractors._run_step.run_extraction` the writer to fill.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actstore.errors import CorruptCacheError, InvalidArgumentError
from actstore.extractors._batching import choose_window, plan_windows, stored_window
from actstore.extractors._config import ModelConfig, check_tokenizer_dir, read_model_config
from actstore.extractors._extract_config import ExtractConfig
from actstore.extractors._fingerprint import tokenizer_fingerprint, weights_fingerprint
from actstore.extractors._hooks import resolve_hooks
from actstore.extractors._inputs import load_prompt_set
from actstore.extractors._layers import resolve_layers
from actstore.extractors._outdir import check_writable as _check_writable
from actstore.extractors._plan import ExtractionPlan, summarize_plan
from actstore.extractors._positions import check_positions_select
from actstore.extractors._report import ExtractionReport, complete_report, shard_done_report

__all__ = ["Planned", "Resumed", "plan_extraction", "resume_extraction"]


@dataclass(kw_only=True)
class Planned:
    """What :func:`plan_extraction` established: inputs checked, prompts tokenized.

    ``tok``, ``n_tokens`` change once a generated continuation is known; the rest stays.
    """

    config: ExtractConfig
    t0: float
    model_dir: str
    model: ModelConfig
    backend_hooks: tuple[str, ...]
    hook_vars: tuple[str, ...]
    layers: tuple[int, ...]
    prompt_set: Any
    set_name: str
    generate: Any
    dev: Any
    dtype_name: str
    torch_dtype: Any
    tokenizer: Any
    tok: Any
    n_tokens: Any
    t_max: int
    #: hook -> width known before loading (resid hooks; every hf hook); others are measured
    widths: dict[str, int] = field(default_factory=dict)

    @property
    def needs_probe(self) -> bool:
        """Whether some hook's width is known only once the model is loaded (tlens)."""
        return len(self.widths) < len(self.hook_vars)

    def mine(self, n_blocks: int, window: int = 1) -> list[int]:
        """The blocks this worker (``config.shard``) writes: whole windows of *window* blocks,
        window ``w`` to worker ``w % N``."""
        shard = self.config.shard
        return [b for b in range(n_blocks) if shard is None or (b // window) % shard[1] == shard[0]]

    def auto_window(self, block_size: int, widths: dict[str, int]) -> int:
        """The ``batch_window`` a new set of this plan gets: ``config.batch_window``, else
        :func:`choose_window`."""
        from actstore.extractors._plan import _ITEMSIZE

        if self.config.batch_window is not None:  # never more than the set's blocks
            return min(self.config.batch_window, max(1, -(-len(self.n_tokens) // block_size)))

        d = sum(widths.get(h, self.model.d_model) for h in self.hook_vars)
        nbytes = block_size * len(self.layers) * self.t_max * d * _ITEMSIZE[self.dtype_name]
        return choose_window(
            self.n_tokens,
            block_size=block_size,
            max_batch_tokens=self.config.max_batch_tokens,
            block_nbytes=nbytes,
        )

    def make_plan(
        self,
        block_size: int,
        n_blocks: int,
        blocks: list[tuple[int, int, int]],
        w: dict[str, int],
        window: int = 1,
    ) -> tuple[ExtractionPlan, list[Any]]:
        """The batches of *blocks* (``(block, start, stop)``) planned in windows of *window*
        blocks, and the plan describing them."""
        cfg, d_model = self.config, self.model.d_model
        batches = plan_windows(
            self.n_tokens,
            [b for b, _, _ in blocks],
            cfg.max_batch_tokens,
            block_size=block_size,
            window=window,
        )
        plan = summarize_plan(
            n_tokens=self.n_tokens,
            batches=batches,
            layers=self.layers,
            hooks=self.hook_vars,
            widths={h: w.get(h, d_model) for h in self.hook_vars},
            dtype=self.dtype_name,
            model=self.model_dir,
            set_name=self.set_name,
            backend=cfg.backend,
            device=str(self.dev),
            n_layers_total=self.model.n_layers,
            d_model=max(w.values()) if w else d_model,
            block_size=block_size,
            n_blocks=n_blocks,
            shard=cfg.shard,
            blocks_this_shard=len(blocks),
            max_batch_tokens=cfg.max_batch_tokens,
            batch_window=window,
        )
        return plan, batches


def _require_inputs(cfg: ExtractConfig) -> None:
    missing = [name for name in ("model", "prompts", "out") if getattr(cfg, name) is None]
    if missing:
        raise InvalidArgumentError(
            f"expected model=, prompts= and out= for an extraction, got no {missing[0]}=; "
            "pass e.g. extract(model='/models/M', prompts='multiplication', out='cache.zarr')"
        )


def plan_extraction(cfg: ExtractConfig) -> Planned:
    """Step 1: check the inputs and tokenize, loading no weights.

    Parameters
    ----------
    cfg
        The extraction's settings (``model``, ``prompts`` and ``out`` set).

    Returns
    -------
    Planned

    Raises
    ------
    InvalidArgumentError, ModelLoadError, UnknownNameError, ExtractionError
        Bad settings for this model (layers, hooks), a directory that is no checkpoint, a prompt
        longer than the context, a position that selects no token.
    """
    t0 = time.perf_counter()
    _require_inputs(cfg)
    model_dir = str(Path(str(cfg.model)).expanduser().absolute())
    from actstore.store.core import write_threads

    write_threads()  # a bad ACTSTORE_WRITE_THREADS is refused before loading anything
    backend_hooks, hook_vars = resolve_hooks(cfg.hooks, cfg.backend)
    mcfg = read_model_config(model_dir, need_weights=not cfg.dry_run)
    check_tokenizer_dir(model_dir)
    if cfg.backend == "hf":
        from actstore.extractors._hookpoints import check_model_dir

        check_model_dir(model_dir, backend_hooks)
    n_layers: int = mcfg.n_layers  # type: ignore[assignment]  # read_model_config sets it
    layers = resolve_layers(cfg.layers, n_layers, other_depths=cfg.other_depths)
    prompt_set = load_prompt_set(cfg.prompts, cfg.set_name, cfg.n_prompts, cfg.seed)
    set_name = cfg.set_name or prompt_set.name

    from actstore.extractors._generate import apply_chat_template
    from actstore.extractors._genflow import check_finders, plan_lengths
    from actstore.extractors._tokenize import load_tokenizer, tokenize_prompts
    from actstore.extractors._torchutil import TORCH_DTYPES, resolve_device, resolve_dtype

    dev = resolve_device(cfg.device)
    dtype_name = resolve_dtype(cfg.dtype, dev)
    tokenizer = load_tokenizer(model_dir)
    gen_cfg, bos = cfg.generate, cfg.bos
    if gen_cfg is not None and gen_cfg.chat_template:
        prompt_set = apply_chat_template(tokenizer, prompt_set)
        bos = "none" if bos == "auto" else bos  # the template writes its own special tokens
    tok = tokenize_prompts(tokenizer, prompt_set, bos=bos, max_context=mcfg.max_context)
    n_tokens, t_max = tok.n_tokens, tok.n_tokens_max
    if gen_cfg is not None:  # planned with the longest continuation; stored lengths come later
        n_tokens, t_max = plan_lengths(tok, gen_cfg, mcfg.max_context)
        check_finders(tok, prompt_set, gen_cfg)  # before the dry run's plan and any generation
    else:  # a position selecting no token anywhere is refused now, not after the extraction
        positions = None if cfg.positions is None else list(cfg.positions)
        check_positions_select(positions, n_tokens, tok.span_masks, set_name)
    # widths: resid hooks are d_model wide; other tlens hooks are measured after loading
    widths = {
        var: mcfg.d_model
        for rel, var in zip(backend_hooks, hook_vars)
        if "resid" in rel or cfg.backend == "hf"
    }
    return Planned(
        config=cfg,
        t0=t0,
        model_dir=model_dir,
        model=mcfg,
        backend_hooks=backend_hooks,
        hook_vars=hook_vars,
        layers=layers,
        prompt_set=prompt_set,
        set_name=set_name,
        generate=gen_cfg,
        dev=dev,
        dtype_name=dtype_name,
        torch_dtype=TORCH_DTYPES[dtype_name],
        tokenizer=tokenizer,
        tok=tok,
        n_tokens=n_tokens,
        t_max=t_max,
        widths=widths,
    )


@dataclass(kw_only=True)
class Resumed:
    """What :func:`resume_extraction` found: the writer to fill (None: create the set), or the
    finished ``report`` when this worker has nothing left to do."""

    fingerprint: dict[str, Any]
    metadata: Any
    eos: Any
    writer: Any = None
    stored_ids: bool = False
    report: ExtractionReport | None = None


def spec_for(p: Planned, fingerprint: dict[str, Any], w: dict[str, int], prov: dict[str, Any]):
    """The :class:`~actstore.store.PromptSetSpec` of this extraction with hook widths *w*."""
    from actstore.store import PromptSetSpec

    ws = set(w.values())
    if len(ws) != 1:
        raise InvalidArgumentError(
            f"expected hooks of one width per run, got widths {w}; extract hooks of "
            "different widths in separate runs with different --set-name"
        )
    return PromptSetSpec(
        n_prompts=len(p.n_tokens),
        n_tokens_max=p.t_max,
        layers=p.layers,
        d_model=ws.pop(),
        dtype=p.dtype_name,
        hooks=p.hook_vars,
        block_size=p.config.block_size,
        fingerprint=fingerprint,
        provenance=prov,
        codec=p.config.codec,
    )


def resume_extraction(p: Planned) -> Resumed:
    """Step 2: compare the plan with the cache at ``out`` before paying for the weights.

    A stored set is checked against the fingerprint (model, tokenizer, prompts, dtype, layers,
    hooks, bos, backend) and opened for writing; a complete one, or one where this worker's
    blocks are all written, ends the extraction here (``Resumed.report``).

    Raises
    ------
    FingerprintMismatchError
        The stored set was extracted with other settings or inputs (the message names the field).
    CorruptCacheError, ReadOnlyError, StorageError
        A damaged cache, an output that cannot be written.
    """
    from actstore.extractors._generate import eos_token_ids
    from actstore.extractors._genflow import (
        check_generate_fields,
        generate_fingerprint,
        stored_tokens,
    )
    from actstore.store import PromptSetMetadata

    cfg, out = p.config, str(p.config.out)
    _check_writable(out)
    fingerprint = {
        "model": weights_fingerprint(p.model_dir),
        "tokenizer": tokenizer_fingerprint(p.model_dir),
        "prompts": p.prompt_set.content_hash(),
        "dtype": p.dtype_name,
        "layers": list(p.layers),
        "hooks": list(p.hook_vars),
        "bos": p.tok.bos,
        "backend": cfg.backend,
    }
    eos = eos_token_ids(p.model_dir, p.tokenizer)
    if p.generate is not None:
        fingerprint.update(generate_fingerprint(p.generate, p.tokenizer, eos))
        metadata: Any = None  # known after generating
    else:
        metadata = PromptSetMetadata(
            text=[q.text for q in p.prompt_set.prompts],
            n_tokens=p.n_tokens,
            token_id=p.tok.token_id,
            token_str=p.tok.token_str,
            labels={name: p.prompt_set.label_array(name) for name in p.prompt_set.label_names},
            span_masks=p.tok.span_masks,
        )
    state = Resumed(fingerprint=fingerprint, metadata=metadata, eos=eos)
    existing = _open_existing(out, cfg.storage_options)
    stored = existing is not None and p.set_name in existing.prompt_sets
    if stored:
        try:
            check_generate_fields(existing, p.set_name, fingerprint)
        except CorruptCacheError:
            if p.generate is not None:
                raise  # a plain run reports the damage where it always did, opening the writer
        if p.generate is not None and existing.set_info(p.set_name).get("ready"):
            p.tok, state.stored_ids = stored_tokens(existing, p.set_name, p.tok.pad_id), True
            p.n_tokens = p.tok.n_tokens
    if stored and not p.needs_probe and (p.generate is None or state.stored_ids):
        # Resuming: check the fingerprint and completion before paying for loading weights.
        spec = spec_for(p, fingerprint, p.widths, {})
        state.writer = existing.prompt_set_writer(p.set_name, spec, metadata)
        state.report = finished_report(p, state.writer, p.widths)
    return state


def finished_report(p: Planned, writer: Any, widths: dict[str, int]) -> ExtractionReport | None:
    """The report when *writer*'s set is complete or this worker's blocks are written, else None."""
    out = str(p.config.out)
    window = writer_window(writer, p.config.batch_window)
    if writer.is_complete():
        plan, _ = p.make_plan(writer.block_size, writer.n_blocks, [], widths, window)
        return complete_report(plan, writer, out, p.set_name, p.t0)
    if not set(p.mine(writer.n_blocks, window)) & set(writer.missing_blocks()):

        def make_plan(*args: Any) -> tuple[ExtractionPlan, list[Any]]:
            return p.make_plan(*args, window)

        report = shard_done_report(writer, make_plan, widths, out, p.set_name, p.config.shard, p.t0)
        if p.config.shard is not None and not p.mine(writer.n_blocks, window):
            n_windows = -(-writer.n_blocks // window)
            report = dataclasses.replace(
                report,
                message=(
                    f"shard {p.config.shard[0]}/{p.config.shard[1]}: no block of "
                    f"{p.set_name!r} falls to this worker (the set has {n_windows} batching "
                    f"window(s) of {window} block(s), handed out window w to worker w % "
                    f"{p.config.shard[1]}); nothing to do: use at most {n_windows} workers, or "
                    "a smaller --batch-window for a new set"
                ),
            )
        return report
    return None


def writer_window(writer: Any, asked: int | None = None) -> int:
    """The ``batch_window`` *writer*'s prompt set records (:func:`stored_window`)."""
    # capped at the set's blocks, as when the set was created
    return stored_window(writer.spec.provenance, writer.name, asked, writer.n_blocks)


def _open_existing(out: str, storage_options: Any) -> Any:
    from actstore.errors import StoreNotFoundError
    from actstore.store import open_cache

    try:
        return open_cache(
            out,
            mode="r+",
            storage_options=None if storage_options is None else dict(storage_options),
        )
    except StoreNotFoundError:
        return None
