"""``actstore info``, ``actstore copy`` and ``actstore verify``: inspect, share and check caches."""

from __future__ import annotations

import argparse
import json
from typing import Any

from actstore._jsonout import dumps
from actstore._validate import split_items
from actstore.commands import allow_negative_index_values
from actstore.commands._lists import stored_layers
from actstore.errors import InvalidArgumentError

__all__ = ["register"]


def _storage_options(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(
            f"expected --storage-options as a JSON object, got {text!r} ({exc.msg}); e.g. "
            "'{\"anon\": true}'"
        ) from exc
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"expected --storage-options as a JSON object, got {text!r}")
    return value


def _parse_prompts(text: str) -> list[int] | slice:
    """``"0:100"`` -> slice, ``"3,5,9"`` -> list of prompt indices."""
    text = text.strip()
    items = None if ":" in text else split_items(text, "--prompts", "0,5,9")
    try:
        if ":" in text:
            parts = [int(p) if p else None for p in text.split(":")]
            if len(parts) > 3:
                raise ValueError
            return slice(*parts)
        return [int(p) for p in items or ()]
    except ValueError as exc:
        raise InvalidArgumentError(
            f"expected prompts as START:STOP[:STEP] or a comma list like 0,5,9, got {text!r}"
        ) from exc


def _cmd_info(args: argparse.Namespace) -> int:
    from actstore.store import cache_info, format_info

    info = cache_info(args.cache, storage_options=_storage_options(args.storage_options))
    print(dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _cmd_copy(args: argparse.Namespace) -> int:
    from actstore.store import copy_cache

    report = copy_cache(
        args.src,
        args.dst,
        layers=None if args.layers is None else stored_layers(args.layers),
        prompt_sets=None
        if args.prompt_sets is None
        else split_items(args.prompt_sets, "--prompt-sets", "arith,physics"),
        prompts=None if args.prompts is None else _parse_prompts(args.prompts),
        storage_options=_storage_options(args.storage_options),
        dst_storage_options=_storage_options(args.dst_storage_options),
    )
    for name, (n, layers, blocks) in report.prompt_sets.items():
        print(f"{name}: {n} prompts, layers {list(layers)}, {blocks} blocks written")
    print(f"copied {report.src} -> {report.dst}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _cmd_verify_model(args)
    for flag in ("sample", "seed", "device", "prompt_sets"):
        if getattr(args, flag) is not None:
            name = "--" + flag.replace("_", "-")
            raise InvalidArgumentError(
                f"expected {name} only with --model, got {name} alone; add --model DIR to "
                "re-run the model, or drop it"
            )
    from actstore.store import format_report, verify_cache

    report = verify_cache(args.cache, storage_options=_storage_options(args.storage_options))
    print(format_report(report, as_json=args.json))
    return 0 if report.ok else 1


def _cmd_verify_model(args: argparse.Namespace) -> int:
    # torch and transformers load only here: `actstore verify` alone needs neither
    from actstore.extractors import (
        format_model_report,
        parse_sample,
        verify_against_model,
    )

    report = verify_against_model(
        args.cache,
        args.model,
        sample=parse_sample(args.sample),
        seed=0 if args.seed is None else args.seed,
        device=args.device or "auto",
        prompt_sets=None
        if args.prompt_sets is None
        else split_items(args.prompt_sets, "--prompt-sets", "arith,physics"),
        storage_options=_storage_options(args.storage_options),
    )
    print(format_model_report(report, as_json=args.json))
    return 0 if report.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``info``, ``copy`` and ``verify`` to the ``actstore`` command line."""
    raw = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "info",
        help="show prompt sets, shapes, dtype, layers, sizes, completion and provenance",
        formatter_class=raw,
        epilog="examples:\n  actstore info cache.zarr\n  actstore info cache.zip --json\n"
        "  actstore info s3://bucket/cache.zarr --storage-options '{\"anon\": true}'\n",
    )
    p.add_argument("cache", help="cache path, .zip file or fsspec URL")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--storage-options", help="fsspec options as JSON (credentials, endpoint)")
    p.set_defaults(func=_cmd_info)

    p = subparsers.add_parser(
        "copy",
        help="copy a cache, or a subset of it, to a directory, URL or single .zip file",
        formatter_class=raw,
        epilog="examples:\n  actstore copy cache.zarr backup.zarr\n"
        "  actstore copy cache.zarr small.zarr --layers 15,31 --prompts 0:100\n"
        "  actstore copy cache.zarr ends.zarr --prompts -1,0     # last and first prompt\n"
        "  actstore copy cache.zarr physics.zip --prompt-sets physics\n"
        "  actstore copy cache.zarr s3://bucket/cache.zarr\n",
    )
    p.add_argument("src", help="source cache path, .zip or URL")
    p.add_argument("dst", help="new destination: path, URL, or a path ending in .zip")
    p.add_argument("--layers", help="real layer indices to keep, e.g. 7,15,23 (default all)")
    p.add_argument("--prompt-sets", help="prompt sets to copy, comma-separated (default all)")
    p.add_argument(
        "--prompts",
        help="prompt indices to keep: START:STOP[:STEP] or 0,5,9; negative count from the end "
        "(-1,0: last and first)",
    )
    allow_negative_index_values(p)
    p.add_argument("--storage-options", help="fsspec options of SRC as JSON")
    p.add_argument("--dst-storage-options", help="fsspec options of DST as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.set_defaults(func=_cmd_copy)

    p = subparsers.add_parser(
        "verify",
        help="read and checksum every chunk (exit 1 if any is corrupt or missing); with "
        "--model, re-run prompts alone and compare every stored layer and hook",
        formatter_class=raw,
        epilog="examples:\n  actstore verify cache.zarr\n  actstore verify cache.zip --json\n"
        "  actstore verify cache.zarr --model ./Qwen2.5-32B\n"
        "  actstore verify cache.zarr --model ./Qwen2.5-32B --sample all --json\n",
    )
    p.add_argument("cache", help="cache path, .zip file or fsspec URL")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--storage-options", help="fsspec options as JSON (credentials, endpoint)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.add_argument(
        "--model",
        help="checkpoint the cache was extracted from: its fingerprint is checked, then sampled "
        "prompts are re-run one at a time, unpadded, and compared (docs/verify.md)",
    )
    p.add_argument("--sample", help="prompts re-run per prompt set: N (default 16) or 'all'")
    p.add_argument("--seed", type=int, help="seed of the prompt sample (default 0)")
    p.add_argument("--device", help="device of the re-run: auto (default), cpu, cuda, cuda:N")
    p.add_argument("--prompt-sets", help="prompt sets to re-run, comma-separated (default all)")
    p.set_defaults(func=_cmd_verify)
