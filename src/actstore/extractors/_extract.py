"""``extract()``: run a local model once over a prompt set and stream activations into the store."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actstore._extras import requires_extras
from actstore._locations import located
from actstore.errors import CorruptCacheError, InvalidArgumentError
from actstore.extractors._batching import plan_batches
from actstore.extractors._config import check_tokenizer_dir, read_model_config
from actstore.extractors._fingerprint import tokenizer_fingerprint, weights_fingerprint
from actstore.extractors._genconfig import parse_generate
from actstore.extractors._hooks import resolve_hooks
from actstore.extractors._layers import resolve_layers
from actstore.extractors._loop import load_backend, run_batches
from actstore.extractors._outdir import check_writable as _check_writable
from actstore.extractors._plan import ExtractionPlan, summarize_plan
from actstore.extractors._positions import (
    check_positions_select,
    pending_positions,
    with_positions,
)
from actstore.extractors._report import ExtractionReport, complete_report, shard_done_report
from actstore.store.core import write_threads
from actstore.store.format import parse_codec

if TYPE_CHECKING:
    from actstore.prompts import PromptSet

__all__ = ["DEFAULT_MAX_BATCH_TOKENS", "extract", "parse_shard"]

DEFAULT_MAX_BATCH_TOKENS = 8192


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"I/N"`` or ``(I, N)`` -> ``(I, N)`` with ``0 <= I < N``."""
    if shard is None:
        return None
    try:
        if isinstance(shard, str):
            i_text, n_text = shard.split("/")
            i, n = int(i_text), int(n_text)
        else:
            i, n = (int(x) for x in shard)
    except (ValueError, TypeError):
        raise InvalidArgumentError(
            f"expected --shard I/N with integers (e.g. 0/4), got {shard!r}; use e.g. "
            "--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"
        ) from None
    if n < 1 or not 0 <= i < n:
        raise InvalidArgumentError(
            f"expected --shard I/N with 0 <= I < N, got {i}/{n}; workers are numbered from 0"
        )
    return (i, n)


def _load_prompt_set(prompts: Any, set_name: str | None, n: int | None, seed: int) -> PromptSet:
    from actstore.prompts import PromptSet, load_prompts

    if isinstance(prompts, PromptSet):
        if n is not None and n < len(prompts):
            prompts = prompts[:n]
        return prompts
    if isinstance(prompts, str | os.PathLike):
        return load_prompts(str(prompts), n=n, seed=seed, set_name=set_name)
    raise InvalidArgumentError(
        f"expected prompts as a PromptSet, generator name or file path, got "
        f"{type(prompts).__name__}; pass e.g. 'multiplication' or prompts.jsonl"
    )


@requires_extras("extraction")
@located("write", "out")
@with_positions
def extract(
    *,
    model: str | os.PathLike[str],
    prompts: Any,
    out: str | os.PathLike[str],
    set_name: str | None = None,
    layers: Any = "all",
    hooks: Any = ("resid_post",),
    backend: str = "hf",
    dtype: str = "auto",
    device: str = "auto",
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    shard: str | tuple[int, int] | None = None,
    dry_run: bool = False,
    progress: Any = None,
    bos: str = "auto",
    block_size: int | None = None,
    n_prompts: int | None = None,
    seed: int = 0,
    command: str | None = None,
    storage_options: dict[str, Any] | None = None,
    generate: Any = None,
    positions: Any = None,
    codec: str | None = None,
) -> ExtractionReport:
    """Run a local model once over a prompt set and store per-token activations.

    Writes ``hook`` arrays with dims ``(prompt, layer, token, d_model)`` into prompt-set group
    *set_name* of the cache at *out*, one block (shard) of prompts at a time, each exactly once.
    Re-running the same call resumes an interrupted run; a finished one does nothing.

    Parameters
    ----------
    model
        Local checkpoint directory (config.json, weights, tokenizer files).
    prompts
        A :class:`~actstore.prompts.PromptSet`, a generator name or a .jsonl/.csv file.
    out
        Cache path or fsspec URL.
    set_name
        Prompt-set group name (default: the prompt set's name).
    layers
        ``"all"``, ``"7,15,-1"`` or a sequence of block indices (negative count from the end).
    hooks
        ``hf``: any of ``resid_pre``, ``attn_out``, ``resid_mid``, ``mlp_in``, ``mlp_out``,
        ``resid_post`` (output of block l before the final norm), in one pass (docs/hooks.md);
        ``tlens``: any per-block TransformerLens hook (``hook_resid_mid``, ``attn.hook_z``, ...).
    backend
        ``"hf"`` (transformers forward hooks) or ``"tlens"`` (TransformerLens TransformerBridge).
    dtype
        ``"auto"`` (bfloat16 on GPU, float32 on CPU), ``"bfloat16"``, ``"float16"``, ``"float32"``.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` (all GPUs via device_map="auto") or ``"cuda:N"``.
    max_batch_tokens
        Bound on padded tokens (batch size x longest prompt) per forward pass.
    shard
        ``"I/N"``: this worker writes blocks ``b`` with ``b % N == I``.
    dry_run
        Plan only: tokenizes and reads config.json, loads no weights and writes nothing.
    progress
        ``None`` (bar on a TTY, log lines otherwise), ``"bar"``, ``"log"`` or ``False``.
    bos
        ``"auto"`` (tokenizer default), ``"prepend"`` (ensure BOS first) or ``"none"``.
    block_size
        Prompts per store shard (default: chosen by the store, ~128 MiB shards).
    n_prompts, seed
        Passed to the prompt generator when *prompts* is a generator name.
    generate
        ``None`` (capture the given text), a token count ``N`` or a
        :class:`~actstore.extractors.GenerateConfig` / mapping of its settings: the model first
        continues each prompt (greedy by default) and prompt + continuation are captured, with
        ``completion (prompt,)`` and ``is_generated (prompt, token)`` stored beside them. The
        continuation is stored before any activation, so a resumed or sharded run captures it
        and never generates again. See docs/generation.md.
    positions
        ``None``, ``"last,before:answer"`` or a list of ``last`` / ``before:SPAN``: once the set
        is complete, its activations at these positions are also stored, small, in
        ``<set_name>/positions``, which probe fitting then reads (docs/read-path.md). Handled by
        :func:`~actstore.extractors._positions.with_positions` (checked before the model loads).
    codec
        Activation compression: ``"zstd:LEVEL"`` or ``"none"``; ``None``: ``zstd:1`` for a new
        set, the stored one when resuming (a different one is refused). docs/write-path.md.

    Returns
    -------
    ExtractionReport
    """
    t0 = time.perf_counter()
    out = str(out)
    model_dir = str(Path(model).expanduser().absolute())
    if isinstance(max_batch_tokens, bool) or int(max_batch_tokens) < 1:
        raise InvalidArgumentError(
            f"expected --max-batch-tokens >= 1, got {max_batch_tokens!r}; e.g. 8192"
        )
    max_batch_tokens = int(max_batch_tokens)
    shard_t = parse_shard(shard)
    codec = None if codec is None else parse_codec(codec)  # refused before loading anything
    write_threads()  # a bad ACTSTORE_WRITE_THREADS too
    backend_hooks, hook_vars = resolve_hooks(hooks, backend)
    cfg = read_model_config(model_dir, need_weights=not dry_run)
    check_tokenizer_dir(model_dir)
    if backend == "hf":
        from actstore.extractors._hookpoints import check_model_dir

        check_model_dir(model_dir, backend_hooks)
    layer_idx = resolve_layers(layers, cfg.n_layers)
    prompt_set = _load_prompt_set(prompts, set_name, n_prompts, seed)
    set_name = set_name or prompt_set.name
    gen_cfg = parse_generate(generate)
    prompts_hash = prompt_set.content_hash()

    import torch

    from actstore.extractors._generate import apply_chat_template, eos_token_ids
    from actstore.extractors._genflow import (
        check_finders,
        check_generate_fields,
        generate_fingerprint,
        generation_phase,
        plan_lengths,
        stored_tokens,
    )
    from actstore.extractors._tokenize import load_tokenizer, tokenize_prompts
    from actstore.extractors._torchutil import (
        TORCH_DTYPES,
        library_versions,
        resolve_device,
        resolve_dtype,
    )
    from actstore.store import PromptSetMetadata, PromptSetSpec, choose_layout

    dev = resolve_device(device)
    dtype_name = resolve_dtype(dtype, dev)
    torch_dtype = TORCH_DTYPES[dtype_name]
    tokenizer = load_tokenizer(model_dir)
    if gen_cfg is not None and gen_cfg.chat_template:
        prompt_set = apply_chat_template(tokenizer, prompt_set)
        bos = "none" if bos == "auto" else bos  # the template writes its own special tokens
    tok = tokenize_prompts(tokenizer, prompt_set, bos=bos, max_context=cfg.max_context)
    n_tokens = tok.n_tokens
    t_max = tok.n_tokens_max
    if gen_cfg is not None:  # planned with the longest continuation; stored lengths come later
        n_tokens, t_max = plan_lengths(tok, gen_cfg, cfg.max_context)
        check_finders(tok, prompt_set, gen_cfg)  # before the dry run's plan and any generation
    else:  # a position selecting no token anywhere is refused now, not after the extraction
        check_positions_select(pending_positions(), n_tokens, tok.span_masks, set_name)

    # widths: resid hooks are d_model wide; other tlens hooks are measured after loading
    widths: dict[str, int] = {}
    for rel, var in zip(backend_hooks, hook_vars):
        if "resid" in rel or backend == "hf":
            widths[var] = cfg.d_model
    needs_probe = len(widths) < len(hook_vars)

    def make_plan(
        block_size_: int, n_blocks: int, blocks: list[tuple[int, int, int]], w: dict[str, int]
    ) -> tuple[ExtractionPlan, list[Any]]:
        batches = plan_batches(n_tokens, blocks, max_batch_tokens)
        plan = summarize_plan(
            n_tokens=n_tokens,
            batches=batches,
            layers=layer_idx,
            hooks=hook_vars,
            widths={h: w.get(h, cfg.d_model) for h in hook_vars},
            dtype=dtype_name,
            model=model_dir,
            set_name=set_name,
            backend=backend,
            device=str(dev),
            n_layers_total=cfg.n_layers,
            d_model=max(w.values()) if w else cfg.d_model,
            block_size=block_size_,
            n_blocks=n_blocks,
            shard=shard_t,
            blocks_this_shard=len(blocks),
            max_batch_tokens=max_batch_tokens,
        )
        return plan, batches

    def mine(n_blocks: int) -> list[int]:
        return [b for b in range(n_blocks) if shard_t is None or b % shard_t[1] == shard_t[0]]

    if dry_run:
        item = 4 if dtype_name == "float32" else 2
        layout = choose_layout(
            n_prompts=len(n_tokens),
            n_layers=len(layer_idx),
            n_tokens=t_max,
            d_model=cfg.d_model,
            itemsize=item,
            block_size=block_size,
        )
        bs = layout.block_size
        blocks = [(b, b * bs, min((b + 1) * bs, len(n_tokens))) for b in mine(layout.n_blocks)]
        plan, _ = make_plan(bs, layout.n_blocks, blocks, widths)
        return ExtractionReport(
            status="dry-run",
            plan=plan,
            out=out,
            set_name=set_name,
            blocks_total=layout.n_blocks,
            seconds=time.perf_counter() - t0,
            message="dry run: nothing loaded or written",
        )

    _check_writable(out)
    fingerprint = {
        "model": weights_fingerprint(model_dir),
        "tokenizer": tokenizer_fingerprint(model_dir),
        "prompts": prompts_hash,
        "dtype": dtype_name,
        "layers": list(layer_idx),
        "hooks": list(hook_vars),
        "bos": tok.bos,
        "backend": backend,
    }
    eos = eos_token_ids(model_dir, tokenizer)
    if gen_cfg is not None:
        fingerprint.update(generate_fingerprint(gen_cfg, tokenizer, eos))
    metadata: Any = PromptSetMetadata(
        text=[p.text for p in prompt_set.prompts],
        n_tokens=n_tokens,
        token_id=tok.token_id,
        token_str=tok.token_str,
        labels={name: prompt_set.label_array(name) for name in prompt_set.label_names},
        span_masks=tok.span_masks,
    )

    from actstore.store import create_cache

    def spec_for(w: dict[str, int], prov: dict[str, Any]) -> PromptSetSpec:
        ws = set(w.values())
        if len(ws) != 1:
            raise InvalidArgumentError(
                f"expected hooks of one width per run, got widths {w}; extract hooks of "
                "different widths in separate runs with different --set-name"
            )
        return PromptSetSpec(
            n_prompts=len(n_tokens),
            n_tokens_max=t_max,
            layers=layer_idx,
            d_model=ws.pop(),
            dtype=dtype_name,
            hooks=hook_vars,
            block_size=block_size,
            fingerprint=fingerprint,
            provenance=prov,
            codec=codec,
        )

    if gen_cfg is not None:
        metadata = None  # known after generating
    existing = _open_existing(out, storage_options)
    writer = None
    stored_ids = False
    if existing is not None and set_name in existing.prompt_sets:
        try:
            check_generate_fields(existing, set_name, fingerprint)
        except CorruptCacheError:
            if gen_cfg is not None:
                raise  # a plain run reports the damage where it always did, opening the writer
        if gen_cfg is not None and existing.set_info(set_name).get("ready"):
            tok, stored_ids = stored_tokens(existing, set_name, tok.pad_id), True
            n_tokens = tok.n_tokens
    resumable = existing is not None and set_name in existing.prompt_sets and not needs_probe
    if resumable and (gen_cfg is None or stored_ids):
        # Resuming: check the fingerprint and completion before paying for loading weights.
        writer = existing.prompt_set_writer(set_name, spec_for(widths, {}), metadata)
    if writer is not None:
        if writer.is_complete():
            plan, _ = make_plan(writer.block_size, writer.n_blocks, [], widths)
            return complete_report(plan, writer, out, set_name, t0)
        if not set(mine(writer.n_blocks)) & set(writer.missing_blocks()):
            return shard_done_report(writer, make_plan, widths, out, set_name, shard_t, t0)

    gen_model = None
    if gen_cfg is not None and not stored_ids:
        tok, metadata, gen_model = generation_phase(
            model_dir=model_dir,
            torch_dtype=torch_dtype,
            dev=dev,
            tokenizer=tokenizer,
            tok=tok,
            prompts=prompt_set,
            cfg=gen_cfg,
            t_max=t_max,
            eos=eos,
            max_batch_tokens=max_batch_tokens,
            keep_model=backend == "hf",
            verbose=progress is not False,
        )
        n_tokens = tok.n_tokens
    backend_obj = load_backend(
        backend,
        model_dir,
        layer_idx,
        backend_hooks,
        torch_dtype,
        dev,
        cfg.n_layers,
        tokenizer,
        model=gen_model,
    )
    try:
        # the widths the blocks give must be the planned ones (the dry run's), and the token ids
        # must fit the embedding: checked before anything is created, so no cache claims a width
        # it does not hold
        _check_measured(backend_obj, widths, cfg.d_model, tok, model_dir, backend)
        # created only now, so a failure to load the model leaves no empty cache behind
        cache = create_cache(out, storage_options=storage_options)
        widths = dict(backend_obj.widths)
        if writer is None:
            provenance = {
                "model_path": model_dir,
                "config": cfg.raw,
                "device": str(dev),
                "cuda_device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
                "dtype": dtype_name,
                "bos": fingerprint["bos"],
                "library_versions": library_versions(),
                "command": command or _default_command(),
                "max_batch_tokens": max_batch_tokens,
                "weights_fingerprint_covers": "config.json, weight file names and sizes, "
                "safetensors index, first and last MiB of each weight file",
                **backend_obj.provenance,
            }
            writer = cache.prompt_set_writer(set_name, spec_for(widths, provenance), metadata)
            if gen_cfg is not None:  # another worker may have stored its continuation first
                tok = stored_tokens(cache, set_name, tok.pad_id)
                n_tokens = tok.n_tokens
            if writer.is_complete():  # a tlens re-run (widths needed the model first)
                plan, _ = make_plan(writer.block_size, writer.n_blocks, [], widths)
                return complete_report(plan, writer, out, set_name, t0)
        missing = set(writer.missing_blocks())
        todo = [b for b in mine(writer.n_blocks) if b in missing]
        if not todo:
            return shard_done_report(writer, make_plan, widths, out, set_name, shard_t, t0)
        blocks = [(b, *writer.block_range(b)) for b in todo]
        plan, batches = make_plan(writer.block_size, writer.n_blocks, blocks, widths)
        stats = run_batches(
            backend_obj=backend_obj,
            writer=writer,
            batches=batches,
            blocks=blocks,
            tok=tok,
            layer_idx=layer_idx,
            hook_vars=hook_vars,
            widths=widths,
            torch_dtype=torch_dtype,
            progress=progress,
            max_batch_tokens=max_batch_tokens,
        )
    finally:
        backend_obj.close()
    complete = writer.is_complete()
    left = len(writer.missing_blocks())
    msg = f"wrote {len(todo)} blocks of prompt set {set_name!r} to {out}" + (
        "; the set is complete" if complete else f"; {left} blocks left for other shards"
    )
    return ExtractionReport(
        status="written",
        plan=plan,
        out=out,
        set_name=set_name,
        blocks_written=len(todo),
        blocks_total=writer.n_blocks,
        complete=complete,
        tokens=stats["tokens"],
        seconds=time.perf_counter() - t0,
        bytes_written=stats["bytes"],
        message=msg,
    )


def _check_measured(
    backend_obj: Any,
    planned: dict[str, int],
    config_width: int,
    tok: Any,
    model_dir: str,
    backend: str,
) -> None:
    """Refuse when the loaded model disagrees with what config.json (and so the plan) says."""
    from actstore.errors import ModelLoadError

    for var, want in planned.items():
        got = backend_obj.widths.get(var)
        if got != want:
            other = "tlens" if backend == "hf" else "hf"
            raise ModelLoadError(
                f"expected the decoder blocks of {model_dir!r} to give {var} of config.json's "
                f"width {config_width} (hidden_size), got width {got}; nothing was written: "
                f"this layout is not supported by --backend {backend}, try --backend {other}"
            )
    n_vocab = getattr(backend_obj, "vocab_size", None)
    top = max((max(row) for row in tok.ids if len(row)), default=-1)
    top = max(top, int(tok.pad_id))  # padding positions are embedded too
    if n_vocab is not None and top >= n_vocab:
        raise ModelLoadError(
            f"expected token ids below the model's {n_vocab} embedding rows, got id {top} from "
            f"the tokenizer in {model_dir!r}; nothing was written: use the tokenizer that "
            "belongs to these weights"
        )


def _open_existing(out: str, storage_options: dict[str, Any] | None) -> Any:
    from actstore.errors import StoreNotFoundError
    from actstore.store import open_cache

    try:
        return open_cache(out, mode="r+", storage_options=storage_options)
    except StoreNotFoundError:
        return None


def _default_command() -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in sys.argv)
