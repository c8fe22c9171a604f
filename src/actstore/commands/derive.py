"""``actstore derive positions``: store the activations at a few positions of an existing cache."""

from __future__ import annotations

import argparse
from typing import Any

from actstore._validate import split_items

__all__ = ["register"]

_EPILOG = """examples:
  actstore derive positions cache.zarr --set-name arithmetic --positions last,before:answer
  actstore derive positions cache.zarr --set-name physics --positions before:v_squared
"""


def _run(args: argparse.Namespace) -> int:
    from actstore.commands.store import _storage_options
    from actstore.errors import InvalidArgumentError
    from actstore.store import materialize_positions, open_cache

    cache = open_cache(
        args.cache, mode="r+", storage_options=_storage_options(args.storage_options)
    )
    sets = cache.prompt_sets
    name = args.set_name
    if name is None:
        if len(sets) != 1:
            raise InvalidArgumentError(
                f"expected --set-name with a cache of several prompt sets ({', '.join(sets)}), "
                "got none; pass --set-name NAME"
            )
        name = sets[0]
    hooks = None if args.hook is None else split_items(args.hook, "--hook", "resid_post")
    done = materialize_positions(cache, name, args.positions, hooks=hooks)
    print(
        f"materialised positions {', '.join(done['positions'])} of {', '.join(done['hooks'])} "
        f"for {done['n_prompts']} prompts of {name!r} in {cache.url}/{name}/positions "
        f"({done['bytes'] / 2**20:.1f} MiB before compression); probe fits read them from now on"
    )
    return 0


def register(subparsers: Any) -> None:
    """Add ``derive`` to the ``actstore`` command line."""
    p = subparsers.add_parser(
        "derive",
        help="add data derived from the activations to a cache (positions for probe fitting)",
        description="Add data derived from a cache's activations.",
    )
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    pos = sub.add_parser(
        "positions",
        help="store the activations at a few positions per prompt, small, for probe fitting",
        description=(
            "Copy the activations at positions such as last and before:SPAN (one token per "
            "prompt) into <set>/positions, beside the full array. Probe fits at those positions "
            "then read these rows only instead of decoding every token (docs/read-path.md). "
            "Written exactly once: a killed run leaves nothing that readers use; re-run it."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pos.add_argument("cache", help="cache path or fsspec URL")
    pos.add_argument("--set-name", help="prompt set (default: the only one)")
    pos.add_argument(
        "--positions",
        required=True,
        help="comma-separated: last, before:SPAN (e.g. last,before:answer)",
    )
    pos.add_argument("--hook", help="comma-separated hooks (default: every stored hook)")
    pos.add_argument("--storage-options", help="fsspec options as JSON (credentials, endpoint)")
    pos.set_defaults(func=_run)
