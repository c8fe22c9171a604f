"""``actstore probe fit|show``, ``actstore detect``, ``actstore plot``, ``actstore report``."""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from actstore._jsonout import dumps
from actstore._validate import split_items
from actstore.commands import allow_negative_index_values
from actstore.commands._analysis_print import print_detection, print_metrics, warn_edges
from actstore.commands._lists import int_list, stored_layers
from actstore.errors import InvalidArgumentError

__all__ = ["register"]

_PROBE_EPILOG = """examples:
  actstore probe fit cache.zarr --prompt-set arithmetic --target value --layers 7,15,23
  actstore probe fit cache.zarr --prompt-set arithmetic --target value \\
      --position before:answer --alphas 0.1,1,10,100 --name value_before --json
  actstore probe fit cache.zarr --prompt-set arithmetic --target value --out probes.npz
  actstore probe fit cache.zarr --prompt-set arithmetic --target value --standardize
  actstore probe show cache.zarr                       # list the probes saved in the cache
  actstore probe show cache.zarr --name value_last --json
  actstore probe show probes.npz
"""

_DETECT_EPILOG = """examples:
  actstore detect cache.zarr --probes value_last --prompt-set physics --target v_squared
  actstore detect cache.zarr --probes probes.npz --prompt-set physics --target v_squared \\
      --span v_squared --json --per-prompt > detection.json
  actstore detect cache.zarr --probes value_last --prompt-set physics --target v_squared --no-write
  actstore detect cache.zarr --probes value_last --prompt-set physics --target v_squared \
      --permutations 1000 --seed 1                 # p-values per layer (Holm-corrected)
  actstore detect small.zarr --probes value_last --prompt-set physics --target v_squared \\
      --layers 15,23          # a subset copy holding some of the probes' layers
(predictions are written as PROMPT_SET/pred_PROBE; a read-only cache needs --no-write)
"""

_PLOT_EPILOG = """examples:
  actstore plot cache.zarr --probes value_last --prompt-set physics --target v_squared --out plots/
  actstore plot cache.zarr --probes value_last --prompt-set physics --target v_squared \\
      --out plots/ --prompts 0,5,9
"""

_REPORT_EPILOG = """examples:
  actstore report cache.zarr --probes value_last --prompt-set physics --target v_squared \\
      --out report/ --title "Where is v² computed?"
  (writes report/report.md, report/report.html and the four PNG figures)
"""


def _floats(text: str) -> list[float]:
    items = split_items(text, "--alphas", "0.1,1,10")  # its own message, not the one below
    try:
        return [float(v) for v in items]
    except ValueError as exc:
        raise InvalidArgumentError(
            f"expected comma-separated numbers (e.g. 0.1,1,10), got {text!r}"
        ) from exc


def _default_name(target: str, position: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{target}_{position}")


def _is_file(spec: str) -> bool:
    """A standalone probe file (``.npz``, or a ``.zarr`` written by save_probes), not a cache."""
    if spec.endswith(".npz"):
        return True
    if not spec.rstrip("/").endswith(".zarr") or not Path(spec).is_dir():
        return False
    import zarr

    try:
        return "actstore_probe" in zarr.open_group(spec, mode="r").attrs
    except (FileNotFoundError, ValueError, KeyError):
        return False


def _load(cache: str, spec: str):  # -> ProbeSet
    from actstore.analysis import load_probes

    return load_probes(spec) if _is_file(spec) else load_probes(cache, name=spec)


def _alpha_grid(text: str) -> list[float] | None:
    """``auto`` (the default grid relative to the data's scale) or comma-separated penalties."""
    return None if text.strip().lower() == "auto" else _floats(text)


def _cmd_fit(args: argparse.Namespace) -> int:
    from actstore.analysis import fit_probes, save_probes

    if args.out:
        from actstore.locations import check_output_dir

        check_output_dir(args.out, parent=True)
    else:
        from actstore import store

        # Saving into the cache: refuse a read-only one before fitting, not after (the fit's
        # warnings would otherwise come first, for probes that are then thrown away).
        store.open_cache(args.cache, mode="r+")
    probes = fit_probes(
        args.cache,
        prompt_set=args.prompt_set,
        target=args.target,
        layers=stored_layers(args.layers) if args.layers else None,
        position=args.position,
        alphas=_alpha_grid(args.alphas),
        cv=args.cv,
        seed=args.seed,
        control=args.control,
        hook=args.hook,
        solver=args.solver,
        kind=args.kind,
        group_by=args.group_by,
        standardize=args.standardize,
    )
    if args.out:
        where = save_probes(probes, args.out)
    else:
        where = save_probes(
            probes, args.cache, name=args.name or _default_name(args.target, args.position)
        )
    warn_edges(probes)  # after saving: a location error is the only line when saving fails
    if args.json:
        print(_json_text({"saved": where, **probes.to_dict()}))
    else:
        print_metrics(probes)
        print(f"saved: {where}")
    return 0


def _json_text(obj: Any) -> str:
    """Standard JSON (RFC 8259 has no NaN/Infinity literals): undefined numbers are ``null``."""
    return dumps(obj, indent=2)


def _cmd_show(args: argparse.Namespace) -> int:
    from actstore.analysis import list_probes, load_probes

    if args.name is None and not _is_file(args.source):
        names = list_probes(args.source)
        if args.json:
            print(dumps({"probes": names}))
        else:
            print("\n".join(names) if names else "no probes saved in this cache")
        return 0
    probes = load_probes(args.source, name=args.name) if args.name else load_probes(args.source)
    if args.json:
        print(_json_text(probes.to_dict()))
    else:
        print_metrics(probes)
    return 0


def _detect(args: argparse.Namespace, write: bool):  # -> (ProbeSet, DetectionResult)
    probes = _load(args.cache, args.probes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            result = _run_detect(args, probes, write)
        finally:  # one line each, like errors (not Python's two-line format), even before one
            for w in caught:
                print(f"actstore: warning: {w.message}", file=sys.stderr)
    used = [int(v) for v in result.stats["layer"].values]
    return (probes.select_layers(used) if used != probes.layers else probes), result


def _run_detect(args: argparse.Namespace, probes: Any, write: bool):  # -> DetectionResult
    from actstore.analysis import detect

    return detect(
        args.cache,
        probes,
        prompt_set=args.prompt_set,
        target=args.target,
        span=args.span,
        seed=args.seed,
        write=write,
        name=getattr(args, "name", None),
        allow_model_mismatch=args.allow_model_mismatch,
        layers=stored_layers(args.layers) if args.layers else None,
        permutations=args.permutations,
        train=args.train_cache,
    )


def _cmd_detect(args: argparse.Namespace) -> int:
    _, result = _detect(args, write=not args.no_write)
    if args.json:
        print(_json_text(result.to_dict(per_prompt=args.per_prompt)))
        return 0
    print_detection(result, args.target, args.prompt_set)
    if not args.no_write:
        name = result.lineage["written_as"]
        print(f"predictions written to {args.cache} as {args.prompt_set}/{name}")
    return 0


def _prepare_out(out: str) -> None:
    """Create the local output folder *out* now, so that a bad location fails in one line first."""
    from actstore.locations import location_errors, require_local

    loc = require_local(out, "--out")
    with location_errors(loc, "write"):
        Path(loc).mkdir(parents=True, exist_ok=True)


def _cmd_plot(args: argparse.Namespace) -> int:
    from actstore.analysis import write_figures

    _prepare_out(args.out)  # a bad --out fails before any work (and before its warnings)
    probes, result = _detect(args, write=False)
    paths = write_figures(
        probes,
        result,
        args.out,
        prompts=int_list(args.prompts, "--prompts") if args.prompts else None,
    )
    for path in paths.values():
        print(path)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from actstore.analysis import write_report

    _prepare_out(args.out)  # a bad --out fails before any work (and before its warnings)
    probes, result = _detect(args, write=False)
    paths = write_report(
        probes,
        result,
        args.out,
        title=args.title,
        prompts=int_list(args.prompts, "--prompts") if args.prompts else None,
    )
    print(paths["markdown"])
    print(paths["html"])
    return 0


def _detect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cache", help="cache path or URL")
    p.add_argument(
        "--probes", required=True, help="probe name saved in the cache, or a .npz/.zarr file"
    )
    p.add_argument("--prompt-set", required=True, help="prompt set to scan (e.g. physics)")
    p.add_argument("--target", required=True, help="numeric label to compare with (v_squared)")
    p.add_argument("--span", help="span marking where the value is written (default: the target)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the random-target control and permutations"
    )
    p.add_argument(
        "--permutations",
        type=int,
        default=100,
        help="shuffled-label probes and random targets per layer for the p-values (default "
        "100; 0 skips them)",
    )
    p.add_argument(
        "--train-cache",
        help="cache holding the probes' training prompt set (default: the scanned cache)",
    )
    p.add_argument(
        "--layers",
        help="comma-separated layers to use (default: every probed layer the prompt set stores)",
    )
    p.add_argument(
        "--allow-model-mismatch",
        action="store_true",
        help="apply probes fitted on another model's cache (d_model must still match)",
    )


def register(subparsers: Any) -> None:
    """Add ``probe``, ``detect``, ``plot`` and ``report`` to the command line."""
    fmt = argparse.RawDescriptionHelpFormatter
    probe = subparsers.add_parser(
        "probe", help="fit and inspect ridge probes", epilog=_PROBE_EPILOG, formatter_class=fmt
    )
    sub = probe.add_subparsers(dest="probe_command", metavar="ACTION")
    fit = sub.add_parser(
        "fit",
        help="fit one ridge probe per layer (k-fold CV, shuffled control)",
        epilog=_PROBE_EPILOG,
        formatter_class=fmt,
    )
    fit.add_argument("cache", help="cache path or URL")
    fit.add_argument("--prompt-set", required=True, help="prompt set to train on")
    fit.add_argument(
        "--target", required=True, help="label: numeric for ridge, categorical for classifiers"
    )
    fit.add_argument("--layers", help="comma-separated layer indices (default: all stored)")
    fit.add_argument(
        "--position", default="last", help="last | before:SPAN | span:SPAN | all (default last)"
    )
    fit.add_argument(
        "--alphas",
        default="auto",
        help="comma-separated ridge penalties, or auto (default: 1e-6..100 x trace(C)/d per "
        "layer); a best alpha at an end of the grid extends it",
    )
    fit.add_argument(
        "--standardize",
        action="store_true",
        help="z-score each dimension inside every training fold (StandardScaler) before the fit",
    )
    fit.add_argument("--cv", type=int, default=5, help="number of folds (default 5)")
    fit.add_argument("--seed", type=int, default=0, help="fold and shuffle seed (default 0)")
    fit.add_argument("--control", choices=["shuffle", "none"], default="shuffle")
    fit.add_argument("--hook", default="resid_post", help="activation variable (resid_post)")
    fit.add_argument("--solver", choices=["auto", "primal", "dual"], default="auto")
    fit.add_argument(
        "--kind",
        choices=["ridge", "logistic", "mean_diff"],
        default="ridge",
        help="ridge regression (default), logistic or mean_diff classification (C = 1/alpha)",
    )
    fit.add_argument(
        "--group-by", help="label (e.g. template) whose values never straddle a fold split"
    )
    fit.add_argument("--name", help="save inside the cache as probes/NAME (default TARGET_POS)")
    fit.add_argument("--out", help="save to a standalone .npz (+ .json) or .zarr instead")
    fit.add_argument("--json", action="store_true", help="print metrics as JSON")
    fit.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    fit.set_defaults(func=_cmd_fit)
    show = sub.add_parser(
        "show",
        help="list saved probes or show one's metrics and lineage",
        epilog=_PROBE_EPILOG,
        formatter_class=fmt,
    )
    show.add_argument("source", help="cache path/URL, or a .npz/.zarr probe file")
    show.add_argument("--name", help="probe name inside the cache (omit to list them)")
    show.add_argument("--json", action="store_true", help="print as JSON")
    show.set_defaults(func=_cmd_show)

    det = subparsers.add_parser(
        "detect",
        help="apply probes at every token; statistics beside controls",
        epilog=_DETECT_EPILOG,
        formatter_class=fmt,
    )
    _detect_args(det)
    det.add_argument(
        "--name", help="derived variable to write (default pred_PROBE, PROBE the probes' name)"
    )
    det.add_argument("--no-write", action="store_true", help="do not write predictions back")
    det.add_argument("--json", action="store_true", help="print statistics as JSON")
    det.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    det.add_argument("--per-prompt", action="store_true", help="with --json: per-prompt rows too")
    det.set_defaults(func=_cmd_detect)

    plot = subparsers.add_parser(
        "plot", help="the four figures as PNG", epilog=_PLOT_EPILOG, formatter_class=fmt
    )
    _detect_args(plot)
    plot.add_argument("--out", required=True, help="directory for the PNG files")
    plot.add_argument("--prompts", help="comma-separated prompt indices to draw (default first)")
    allow_negative_index_values(plot)
    plot.set_defaults(func=_cmd_plot)

    rep = subparsers.add_parser(
        "report",
        help="Markdown + HTML report with figures and tables",
        epilog=_REPORT_EPILOG,
        formatter_class=fmt,
    )
    _detect_args(rep)
    rep.add_argument("--out", required=True, help="directory for report.md, report.html, PNGs")
    rep.add_argument("--title", default="actstore experiment", help="report title")
    rep.add_argument("--prompts", help="comma-separated prompt indices to draw (default first)")
    allow_negative_index_values(rep)
    rep.set_defaults(func=_cmd_report)
