"""``actstore prompts list|show|write``: browse the generators and write prompt files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from actstore._jsonout import dumps
from actstore.errors import InvalidArgumentError

__all__ = ["register"]

_EPILOG = """examples:
  actstore prompts list
  actstore prompts show kinetic_energy --n 5 --seed 0 -o cot=worked
  actstore prompts show my_prompts.jsonl --n 3 --json
  actstore prompts write multiplication train.jsonl --n 1000 --seed 0
  actstore prompts write kinetic_energy physics.csv -o cot=steps -o formats=momentum,drop_height
"""


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InvalidArgumentError(
            f"expected a generator option as KEY=VALUE (e.g. cot=worked), got {text!r}"
        )
    try:
        # Numbers, true/false, null and JSON lists arrive typed; anything else is a string.
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return dict(_parse_option(o) for o in args.option or [])


def _load(args: argparse.Namespace, n: int | None):  # -> PromptSet
    from actstore.prompts import load_prompts

    return load_prompts(args.source, n=n, seed=args.seed, set_name=args.set_name, **_options(args))


def _summary(ps) -> dict[str, Any]:  # ps: PromptSet
    return {
        "name": ps.name,
        "n_prompts": len(ps),
        "content_hash": ps.content_hash(),
        "label_names": ps.label_names,
        "span_names": ps.span_names,
        "source": dict(ps.source),
    }


def _cmd_list(args: argparse.Namespace) -> int:
    from actstore.prompts import generator_info, list_generators

    infos = [generator_info(name) for name in list_generators()]
    if args.json:
        rows = [
            {
                "name": i.name,
                "description": i.description,
                "options": i.options,
                "default_n": i.default_n,
            }
            for i in infos
        ]
        print(dumps(rows, indent=2))
        return 0
    width = max(len(i.name) for i in infos)
    for i in infos:
        print(f"{i.name:<{width}}  {i.description}")
        opts = ", ".join(f"{k}={v!r}" for k, v in i.options.items())
        print(f"{'':<{width}}  default n={i.default_n}" + (f"; options: {opts}" if opts else ""))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from actstore.prompts import list_generators

    if args.n is None and args.source not in list_generators():
        # A file shows its first prompts: up to 5 unless --n asks for another number.
        ps = _load(args, None)
        ps = ps[:5]
    else:
        ps = _load(args, 5 if args.n is None else args.n)
    if args.json:
        out = _summary(ps)
        out["prompts"] = [p.to_record() for p in ps]
        print(dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(
        f"{ps.name}: {len(ps)} prompt{'' if len(ps) == 1 else 's'}, "
        f"sha256 {ps.content_hash()[:16]}..., "
        f"labels {', '.join(ps.label_names) or '-'}; spans {', '.join(ps.span_names) or '-'}"
    )
    for i, p in enumerate(ps):
        print(f"[{i}] {p.text}")
        labels = " ".join(f"{k}={v}" for k, v in p.labels.items())
        spans = " ".join(f"{k}={p.span_text(k)!r}@{s}:{e}" for k, (s, e) in p.spans.items())
        print(f"    labels: {labels or '-'}")
        print(f"    spans:  {spans or '-'}")
    return 0


def _cmd_write(args: argparse.Namespace) -> int:
    from actstore.locations import require_local

    out = Path(require_local(args.out, "the prompt file"))
    suffix = out.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise InvalidArgumentError(
            f"expected an output path ending in .jsonl or .csv, got {str(out)!r}; rename it"
        )
    if out.exists() and not args.force:
        raise InvalidArgumentError(
            f"expected a new output path, got existing {str(out)!r}; pass --force to overwrite"
        )
    if not out.parent.is_dir():
        raise InvalidArgumentError(
            f"expected an existing folder for the output, got {str(out.parent)!r}; create it first"
        )
    ps = _load(args, args.n)
    if suffix == ".jsonl":
        ps.to_jsonl(out)
    else:
        ps.to_csv(out)
    if args.json:
        print(dumps({**_summary(ps), "path": str(out)}, indent=2))
    else:
        print(f"wrote {len(ps)} prompts of {ps.name!r} to {out} (sha256 {ps.content_hash()})")
    return 0


def _add_source_args(p: argparse.ArgumentParser, *, default_n_help: str) -> None:
    p.add_argument("source", help="a generator name (see `actstore prompts list`) or a file")
    p.add_argument("--n", type=int, default=None, help=f"number of prompts ({default_n_help})")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--set-name", default=None, help="name of the prompt set (default: source)")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="generator option, repeatable (e.g. -o cot=worked)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``actstore prompts`` and its subcommands."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser(
        "prompts",
        help="list prompt generators, show prompts, write prompt files",
        description="Prompt sets: built-in generators (seeded) and JSONL/CSV prompt files.",
        epilog=_EPILOG,
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="prompts_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])

    p_list = sub.add_parser(
        "list",
        help="list the registered generators and their options",
        epilog="examples:\n  actstore prompts list\n  actstore prompts list --json\n",
        formatter_class=fmt,
    )
    p_list.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_list.set_defaults(func=_cmd_list)

    p_show = sub.add_parser(
        "show",
        help="print prompts with their labels and spans",
        epilog=(
            "examples:\n  actstore prompts show multiplication\n"
            "  actstore prompts show kinetic_energy --n 5 --seed 0 -o cot=worked\n"
            "  actstore prompts show prompts.jsonl --json\n"
        ),
        formatter_class=fmt,
    )
    _add_source_args(p_show, default_n_help="default 5")
    p_show.set_defaults(func=_cmd_show)

    p_write = sub.add_parser(
        "write",
        help="write a prompt set to a .jsonl or .csv file",
        epilog=(
            "examples:\n  actstore prompts write kinetic_energy physics.jsonl -o cot=worked\n"
            "  actstore prompts write arithmetic train.csv --n 2000 --seed 1\n"
        ),
        formatter_class=fmt,
    )
    _add_source_args(p_write, default_n_help="default: the generator's default, or the whole file")
    p_write.add_argument("out", help="output path, .jsonl or .csv")
    p_write.add_argument("--force", action="store_true", help="overwrite an existing file")
    p_write.set_defaults(func=_cmd_write)
