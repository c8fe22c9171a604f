"""Subcommands of the ``actstore`` command line, one module per area.

Each module defines ``register(subparsers)``, which adds its subcommands and sets ``func`` on each
parser to a callable ``func(args) -> int``. :mod:`actstore.cli` discovers the modules here, so an
area adds a command without touching the dispatcher. Modules here import nothing heavy at import
time (torch, transformers, matplotlib): the command line must start fast.
"""

import re as _re
from typing import Any as _Any

#: Values of index options: ``-1,0``, ``-5:``, ``-3:-1``, ``0,-2`` (digits, commas, colons, '-').
_INDEX_VALUE = _re.compile(r"^-\d[\d,:\-]*$")


def allow_negative_index_values(parser: _Any) -> None:
    """Let ``--prompts -1,0`` pass: argparse reads any word starting with '-' that is not a plain
    negative number as an option. Here words like ``-1,0`` or ``-5:`` are values (this parser
    has no option that looks like one)."""
    parser._negative_number_matcher = _INDEX_VALUE
