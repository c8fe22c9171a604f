"""``actstore export``: a cache's real tokens as an HF datasets folder (SAELens) or .npy files."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from actstore._jsonout import dumps
from actstore._validate import split_items
from actstore.commands._lists import stored_layers
from actstore.commands.store import _storage_options

__all__ = ["register"]


def _cmd_export(args: argparse.Namespace) -> int:
    from actstore.store import export_cache

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = _run(args, export_cache)
    for w in caught:
        print(f"actstore: warning: {w.message}", file=sys.stderr)
    if args.json:
        print(dumps({"out": report.out, "format": report.format, **report.prompt_sets}))
        return 0
    for name, info in report.prompt_sets.items():
        extra = f", {info['rows']} rows of {info['context_size']}" if "rows" in info else ""
        print(f"{name}: {info['tokens']} tokens{extra} -> {info['path']}")
    return 0


def _run(args: argparse.Namespace, export_cache: Any) -> Any:
    return export_cache(
        args.cache,
        args.out,
        format=args.format,
        layers=None if args.layers is None else stored_layers(args.layers),
        hooks=None if args.hooks is None else split_items(args.hooks, "--hooks", "resid_post"),
        prompt_sets=None
        if args.prompt_sets is None
        else split_items(args.prompt_sets, "--prompt-sets", "arith,physics"),
        dtype=args.dtype,
        context_size=args.context_size,
        storage_options=_storage_options(args.storage_options),
        quiet=args.quiet or args.json,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` to the ``actstore`` command line."""
    p = subparsers.add_parser(
        "export",
        help="write real tokens as an HF datasets folder (SAELens's layout) or flat .npy files",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  actstore export cache.zarr --format hf-datasets --out acts/ --layers 15\n"
        "  actstore export cache.zarr --format npy --out arrays/ --prompt-sets physics\n",
    )
    p.add_argument("cache", help="cache path, .zip file or fsspec URL")
    p.add_argument("--format", required=True, choices=["hf-datasets", "npy"])
    p.add_argument("--out", required=True, help="new directory; one subfolder per prompt set")
    p.add_argument("--layers", help="real layer indices, e.g. 7,15 (default all)")
    p.add_argument("--hooks", help="hooks, e.g. resid_post (default all stored)")
    p.add_argument("--prompt-sets", help="prompt sets, comma-separated (default all)")
    p.add_argument("--dtype", choices=["float32", "float16"], help="default float32")
    p.add_argument(
        "--context-size", type=int, help="tokens per hf-datasets row (default: longest prompt)"
    )
    p.add_argument("--storage-options", help="fsspec options as JSON (credentials, endpoint)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print a JSON report (implies --quiet)")
    p.set_defaults(func=_cmd_export)
