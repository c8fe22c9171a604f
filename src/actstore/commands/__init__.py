"""Subcommands of the ``actstore`` command line, one module per area.

Each module defines ``register(subparsers)``, which adds its subcommands and sets ``func`` on each
parser to a callable ``func(args) -> int``. :mod:`actstore.cli` discovers the modules here, so an
area adds a command without touching the dispatcher. Modules here import nothing heavy at import
time (torch, transformers, matplotlib): the command line must start fast.
"""
