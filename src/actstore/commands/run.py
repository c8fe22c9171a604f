"""``actstore run`` (a whole experiment from a config) and ``actstore demo``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from actstore._jsonout import dumps

__all__ = ["register"]

_RUN_EPILOG = """examples:
  actstore run experiments/velocity_computation.toml --model /path/to/Qwen2.5-32B \
      --out runs/velocity
  actstore run experiments/velocity_computation.toml --out runs/velocity --stage probes --force
  actstore run experiments/velocity_computation_positions.toml --model ./tiny --out runs/pos --json
  actstore run experiments/velocity_computation.toml --check     # validate the config only

stages: extract, probes, detect, plots, report (each skipped when its inputs are unchanged)
"""

_DEMO_EPILOG = """examples:
  actstore demo            # train (or reuse) the tiny model; run the study on it and its twin
  actstore demo --out demo_out --retrain
"""


def register(sub: Any) -> None:
    """Add ``run`` and ``demo`` to the command line."""
    p = sub.add_parser(
        "run",
        help="run a whole experiment (extract, probes, detect, plots, report) from a TOML config",
        description="Run an experiment config end to end; finished stages are skipped.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "config", help="experiment config (TOML), e.g. experiments/velocity_computation.toml"
    )
    p.add_argument("--model", help="local model directory (overrides [model] path)")
    p.add_argument("--out", help="output folder (default: runs/<config name>)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (overrides [extract] device)")
    p.add_argument(
        "--stage",
        action="append",
        choices=("extract", "probes", "detect", "plots", "report"),
        help="run only this stage (repeatable); default: all",
    )
    p.add_argument(
        "--force", action="store_true", help="re-run the chosen stages even if up to date"
    )
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.add_argument("--json", action="store_true", help="print the stage records as JSON")
    p.set_defaults(func=_run)

    d = sub.add_parser(
        "demo",
        help="the whole study on a tiny model trained here, beside its random-initialised twin",
        description=(
            "Train (once, then reuse) a tiny Qwen2-architecture model on the prompt generators' "
            "text, run the velocity-computation study on it and on its untrained twin, and write "
            "a report."
        ),
        epilog=_DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    d.add_argument(
        "--model-cache",
        help="where the trained tiny model is kept (default: $ACTSTORE_HOME or ~/.cache/actstore)",
    )
    d.add_argument("--retrain", action="store_true", help="train the tiny model again")
    d.set_defaults(func=_demo)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from actstore.experiment import ExperimentRun, load_config

    cfg = load_config(args.config)
    if args.check:
        print(f"config {args.config}: ok ({cfg.name})")
        return 0
    from actstore.locations import require_local

    out = Path(require_local(args.out, "--out")) if args.out else Path("runs") / cfg.name
    # with --json, stdout is the JSON document alone: the stage log goes to stderr
    log = (lambda line: print(line, file=sys.stderr)) if args.json else None
    run = ExperimentRun(cfg, out=out, model=args.model, device=args.device, log=log)
    records = run.run(args.stage, force=args.force)
    if args.json:
        print(dumps([r.__dict__ for r in records], indent=1))
    else:
        total = sum(r.seconds for r in records)
        print(f"done in {total:.1f} s; outputs in {out}")
        if run.report_path.exists():
            print(f"report: {run.report_path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from actstore.experiment import run_demo

    run_demo(out=args.out, model_cache=args.model_cache, retrain=args.retrain)
    return 0
