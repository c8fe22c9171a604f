"""``python -m actstore.tinymodels``: build the demo model and check what probes find in it.

Examples
--------
python -m actstore.tinymodels demo --cache-dir /tmp/models
python -m actstore.tinymodels probe-check --cache-dir /tmp/models --n 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from actstore.tinymodels import get_demo_model

    t0 = time.perf_counter()
    trained = get_demo_model(args.cache_dir)
    twin = get_demo_model(args.cache_dir, random_twin=True)
    log = json.loads((trained / "training_log.json").read_text())
    print(f"trained: {trained}")
    print(f"twin:    {twin}")
    print(
        f"seconds: {time.perf_counter() - t0:.1f} (training loop {log['seconds']:.1f} when built)"
    )
    rows = log["eval"][:: max(1, len(log["eval"]) // 6)]
    for row in rows + [r for r in log["eval"][-1:] if r is not rows[-1]]:
        print(
            f"step {row['step']:5d}  held-out loss {row['loss']:.3f}  answer loss "
            f"{row['answer_loss']:.3f}  answer accuracy {row['answer_accuracy']:.3f}"
        )
    return 0


def _probe_check(args: argparse.Namespace) -> int:
    import torch

    from actstore.prompts import generate
    from actstore.tinymodels import get_demo_model
    from actstore.tinymodels._check import answer_positions, probe_r2, residuals

    torch.set_num_threads(1)
    trained = get_demo_model(args.cache_dir)
    twin = get_demo_model(args.cache_dir, random_twin=True)
    ps = generate("multiplication", args.n, seed=args.seed)
    texts = [p.text for p in ps.prompts]
    value, x, y = ps.label_array("value"), ps.label_array("x"), ps.label_array("y")
    interaction = (x - x.mean()) * (y - y.mean())
    pos = answer_positions(trained, texts)
    print(f"{args.n} multiplication prompts (seed {args.seed}); 5-fold CV R² of a ridge probe")
    print("| model | position | target | " + " | ".join(f"layer {i}" for i in range(4)) + " |")
    print("| --- | --- | --- |" + " --- |" * 4)
    for name, path in (("trained", trained), ("random twin", twin)):
        for where in ("before", "last"):
            acts = residuals(path, texts, pos[where])
            for target, yv, shuffle in (
                ("value", value, False),
                ("value, shuffled labels", value, True),
                ("(x-x̄)(y-ȳ)", interaction, False),
            ):
                r2 = probe_r2(acts, yv, shuffle_labels=shuffle)
                cells = " | ".join(f"{v:.3f}" for v in r2)
                print(f"| {name} | {where} | {target} | {cells} |", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m actstore.tinymodels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("demo", help="build (or find) the demo model and its twin")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=_demo)
    p = sub.add_parser("probe-check", help="ridge-probe R² per layer, trained vs random twin")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=99)
    p.set_defaults(func=_probe_check)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
