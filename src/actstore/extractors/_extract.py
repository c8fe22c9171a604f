"""``extract()``: run a local model once over a prompt set and stream activations into the store.

One code path: the keywords (or an :class:`~actstore.extractors.ExtractConfig`) become one
config, then three steps run, each its own function:

1. :func:`~actstore.extractors._steps.plan_extraction`: check inputs, tokenize (no weights);
2. :func:`~actstore.extractors._steps.resume_extraction`: compare with the cache, reopen it;
3. :func:`~actstore.extractors._run_step.run_extraction`: load the model, write the blocks.
"""

from __future__ import annotations

import os
from typing import Any

from actstore._extras import requires_extras
from actstore._locations import location_errors
from actstore.extractors._dryrun import dry_run_report
from actstore.extractors._extract_config import ExtractConfig
from actstore.extractors._positions import check_spans, materialise_positions
from actstore.extractors._report import ExtractionReport
from actstore.extractors._steps import plan_extraction, resume_extraction

__all__ = ["extract"]


@requires_extras("extraction")
def extract(config: ExtractConfig | None = None, /, **settings: Any) -> ExtractionReport:
    """Run a local model once over a prompt set and store per-token activations.

    Writes ``hook`` arrays with dims ``(prompt, layer, token, d_model)`` into prompt-set group
    ``set_name`` of the cache at ``out``, one block (shard) of prompts at a time, each exactly
    once. Re-running the same call resumes an interrupted run; a finished one does nothing.

    Parameters
    ----------
    config : ExtractConfig, optional
        Every setting at once; keywords given beside it replace its fields.
    **settings
        The fields of :class:`~actstore.extractors.ExtractConfig` (its docstring lists them with
        their choices and defaults), most often ``model`` (a local checkpoint directory),
        ``prompts`` (a PromptSet, generator name or .jsonl/.csv file), ``out`` (cache path or
        fsspec URL), ``set_name``, ``layers`` (``"all"``, ``"spaced:K"``, ``"7,15,-1"`` or a list;
        docs/reference/extract.md), ``hooks``, ``backend``, ``dtype``, ``device``,
        ``max_batch_tokens``, ``shard`` (``"I/N"``), ``dry_run``, ``positions``, ``generate``,
        ``codec``.

    Returns
    -------
    ExtractionReport
        ``status`` ``"dry-run"``, ``"written"`` or ``"complete"``; the plan, blocks written,
        tokens, bytes and seconds.

    Raises
    ------
    InvalidArgumentError
        A setting outside its choices (raised when the config is built, before anything loads).
    ModelLoadError, UnknownNameError, ExtractionError, FingerprintMismatchError
        A directory that is no checkpoint, an unknown span, a prompt longer than the context, a
        cache extracted with other settings (see the three steps in
        :mod:`actstore.extractors._steps` and :mod:`actstore.extractors._run_step`).
    StorageError, ReadOnlyError, DiskFullError
        An output location that cannot be written.

    Examples
    --------
    >>> extract(model="/models/Qwen2.5-32B", prompts="multiplication", n_prompts=2000,
    ...         layers="7,15,-1", out="cache.zarr")  # doctest: +SKIP
    >>> cfg = ExtractConfig(model="/models/M", prompts="p.jsonl", out="c.zarr", dry_run=True)
    >>> extract(cfg).plan.describe()  # doctest: +SKIP
    """
    cfg = ExtractConfig.build(config, **settings)
    if cfg.out is None:
        return _extract(cfg)
    loc = os.fspath(cfg.out)
    loc = loc[len("file://") :] if loc.startswith("file://") else loc
    with location_errors(loc, "write"):
        return _extract(cfg)


def _extract(cfg: ExtractConfig) -> ExtractionReport:
    if cfg.positions is not None and not cfg.dry_run:
        check_spans(cfg)
    planned = plan_extraction(cfg)
    if cfg.dry_run:
        return dry_run_report(planned)
    resumed = resume_extraction(planned)
    report = resumed.report
    if report is None:
        from actstore.extractors._run_step import run_extraction

        report = run_extraction(planned, resumed)
    if cfg.positions is None or not report.complete:
        return report
    return materialise_positions(report, list(cfg.positions), cfg.storage_options)
