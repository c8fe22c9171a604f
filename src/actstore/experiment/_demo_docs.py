"""``python -m actstore.experiment._demo_docs [--run] DEMO_OUT``: update the docs from a demo run.

The one module that needs both halves of the demo: :mod:`._demo` (run it) and :mod:`._demo_results`
(its tables, :func:`update_docs`). Keeping this entry point apart keeps the dependency one way:
``_demo_docs -> _demo -> _demo_results``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from actstore.errors import InvalidArgumentError
from actstore.experiment._demo import run_demo
from actstore.experiment._demo_results import update_docs

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m actstore.experiment._demo_docs DEMO_OUT``: update the docs from a demo run."""
    ap = argparse.ArgumentParser(prog="python -m actstore.experiment._demo_docs")
    ap.add_argument("demo_out", help="the demo's output folder (holds results.md)")
    ap.add_argument(
        "--run",
        action="store_true",
        help="first run the demo into DEMO_OUT (cached model and extraction reused; every "
        "analysis stage re-run, so the tables come from the code as it is now)",
    )
    ap.add_argument("--docs", default="docs/demo-results.md")
    ap.add_argument("--tutorial", default="docs/tutorial/demo.md")
    args = ap.parse_args(argv)
    if args.run:
        run_demo(out=args.demo_out, reanalyse=True)
    try:
        paths = update_docs(args.demo_out, docs=args.docs, tutorial=args.tutorial)
    except InvalidArgumentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
