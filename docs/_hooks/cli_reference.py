"""mkdocs hook: render ``actstore --help`` and every subcommand's help into the CLI reference page.

The page ``reference/cli.md`` holds the marker ``<!-- cli-help -->``; at build time it is replaced
by the help text of the parser itself (:func:`actstore.cli.build_parser`), so the reference can
never drift from the command line. Nested subcommands (``prompts list``, ``probe fit``) are walked
too. Runs inside ``mkdocs build`` (``make docs``); needs ``actstore`` importable.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MARKER = "<!-- cli-help -->"
_SRC = Path(__file__).resolve().parents[2] / "src"


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:  # argparse has no public walk of subparsers
        if isinstance(action, argparse._SubParsersAction):
            out.extend(action.choices.items())
    return out


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]):
    yield path, parser
    for name, sub in _subparsers(parser):
        yield from _walk(sub, (*path, name))


def render() -> str:
    """Markdown: one section per command, its ``--help`` in a code block."""
    if str(_SRC) not in sys.path:
        sys.path.insert(0, str(_SRC))
    os.environ["COLUMNS"] = "100"  # the same wrapping whatever the terminal
    from actstore.cli import build_parser

    parts = []
    for path, parser in _walk(build_parser(), ("actstore",)):
        title = " ".join(path)
        level = "#" * min(2 + len(path) - 1, 4)
        parts.append(f"{level} `{title}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    """mkdocs event: fill the marker of the CLI reference page (other pages unchanged)."""
    if MARKER in markdown:
        return markdown.replace(MARKER, render())
    return markdown
