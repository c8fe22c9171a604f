"""``actstore repair``: make a damaged cache's bad blocks resumable, optionally re-extract them."""

from __future__ import annotations

import argparse
from typing import Any

from actstore._jsonout import dumps
from actstore.errors import InvalidArgumentError

__all__ = ["register"]

_EPILOG = """examples:
  actstore verify cache.zarr                      # list the damage
  actstore repair cache.zarr --dry-run            # what repair would do
  actstore repair cache.zarr                      # unrecord damaged blocks; then re-run the
                                                  # original `actstore extract` command
  actstore repair cache.zarr --from-extraction --model /models/Qwen2.5-32B \\
      --prompts physics.jsonl                     # unrecord and rewrite them now
"""


def _reextract(args: argparse.Namespace, cache_url: str, set_name: str) -> Any:
    """Resume the extraction of *set_name* with the settings the cache records (layers, hooks,
    dtype, backend, bos, block size, batch size): :meth:`ExtractConfig.from_stored`."""
    from actstore.extractors import ExtractConfig, extract
    from actstore.store import open_cache

    config = ExtractConfig.from_stored(
        open_cache(cache_url).spec(set_name),
        model=args.model,
        prompts=args.prompts,
        out=cache_url,
        set_name=set_name,
        device=args.device,
        max_batch_tokens=args.max_batch_tokens,
        n_prompts=args.n,
        seed=args.seed,
        progress="none",
    )
    return extract(config)


def _rederive_positions(url: str, names: list[str], lines: list[str]) -> list[str]:
    """Materialise again the positions repair dropped, for every set that is complete and was
    extracted with ``--positions`` (its stored ``extract_config``); the names done."""
    from actstore.store import materialize_positions, open_cache

    cache = open_cache(url, mode="r+")
    done = []
    for name in names:
        stored = cache.spec(name).provenance.get("extract_config") or {}
        positions = stored.get("positions")
        if not positions or cache.missing_blocks(name):
            continue
        materialize_positions(cache, name, list(positions))
        lines.append(f"{name}: materialised positions {', '.join(positions)} again")
        done.append(name)
    return done


def _run(args: argparse.Namespace) -> int:
    from actstore.store import format_repair, repair_cache

    if args.from_extraction and (not args.model or not args.prompts):
        raise InvalidArgumentError(
            "expected --model and --prompts with --from-extraction, got "
            f"--model {args.model!r} --prompts {args.prompts!r}; pass the extraction's model "
            "directory and prompt set (generator name or file)"
        )
    from actstore.commands.store import _storage_options

    options = _storage_options(args.storage_options)
    report = repair_cache(args.cache, dry_run=args.dry_run, storage_options=options)
    out: dict[str, Any] = report.to_json()
    lines = [format_repair(report)]
    if args.from_extraction and not args.dry_run and report.blocks:
        sets = [args.set_name] if args.set_name else sorted(report.blocks)
        if len(sets) > 1:
            raise InvalidArgumentError(
                f"expected one damaged prompt set per --from-extraction run, got {sets}; pass "
                "--set-name with the matching --prompts (the blocks stay unrecorded until then)"
            )
        rep = _reextract(args, report.url, sets[0])
        out["extraction"] = {"blocks_written": rep.blocks_written, "complete": rep.complete}
        lines.append(f"re-extracted: {rep.message}")
    if args.from_extraction and not args.dry_run and report.positions:
        out["positions_rederived"] = _rederive_positions(report.url, report.positions, lines)
    print(dumps(out, indent=2) if args.json else "\n".join(lines))
    return 0 if report.ok else 1


def register(subparsers: Any) -> None:
    """Add ``repair`` to the ``actstore`` command line."""
    from actstore.extractors import ExtractConfig

    p = subparsers.add_parser(
        "repair",
        help="unrecord damaged blocks (and rebuild activation metadata) so resume rewrites them",
        description=(
            "Find damage with the same checks as `actstore verify`. Damaged, truncated or deleted "
            "shards and damaged completion markers: the block is unrecorded, so re-running the "
            "extraction rewrites exactly those shards. A damaged zarr.json of an activation array "
            "is rebuilt from the stored spec. Other damage is reported (exit 1)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("cache", help="local cache path or fsspec URL (not a .zip: read-only)")
    p.add_argument(
        "--dry-run", action="store_true", help="report what would be done; change nothing"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.add_argument("--storage-options", help="fsspec options as JSON (credentials, endpoint)")
    p.add_argument(
        "--from-extraction",
        action="store_true",
        help="after unrecording, re-run the extraction now (needs --model and --prompts); the "
        "stored layers, dtype, hooks, block size and batch size are reused",
    )
    p.add_argument("--model", help="the extraction's local checkpoint directory")
    p.add_argument("--prompts", help="the extraction's prompt generator name or .jsonl/.csv file")
    p.add_argument("--set-name", help="the damaged prompt set to re-extract (default: the one)")
    p.add_argument("--n", type=int, help="number of prompts the generator made (as extracted)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (as extracted, default 0)")
    p.add_argument(
        "--device", default=ExtractConfig.default("device"), help="auto, cpu, cuda or cuda:N"
    )
    p.add_argument("--max-batch-tokens", type=int, help="default: the value the cache records")
    p.set_defaults(func=_run)
