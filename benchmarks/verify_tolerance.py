"""How close padded-batch caches come to ``verify --model``'s tolerance, measured (docs/verify.md).

For each family, extracts every hook point of the same prompts in padded batches (the default way
caches are written) in float32 and in bfloat16, then runs ``verify_against_model`` over every
prompt (each re-run alone, unpadded) and reports, per family and dtype, the largest
``|stored - fresh| / allowed`` over all hooks, layers and values (below 1 passes), the largest
absolute difference, the share of values more than 4 ulp apart, and the verdict:

    python benchmarks/verify_tolerance.py                 # print the table
    python benchmarks/verify_tolerance.py --write-docs    # also rewrite docs/verify.md's section

Models are random-initialised tiny checkpoints from ``actstore.tinymodels``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for p in (HERE.parent / "src", HERE.parent):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from benchmarks.bf16_padding import machine, prompts  # noqa: E402

DOC = HERE.parent / "docs" / "verify.md"
FAMILIES = ("qwen2", "gpt2", "gemma2", "falcon", "opt", "mixtral", "qwen2_moe")
HEADER = ("family", "dtype", "worst diff / allowed", "max abs diff", "> 4 ulp", "verdict")


def measure_one(arch: str, dtype: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from actstore.extractors import extract
    from actstore.extractors._hookpoints import is_parallel
    from actstore.extractors._verify_model import verify_against_model
    from actstore.tinymodels import build_random_model

    model = work / f"m_{arch}"
    if not model.exists():
        build_random_model(model, arch=arch, n_layers=args.n_layers, d_model=args.d_model,
                           n_heads=args.n_heads, seed=0)  # fmt: skip
    from transformers import AutoConfig

    parallel = is_parallel(AutoConfig.from_pretrained(model))
    hooks = ["resid_pre", "attn_out", "mlp_in", "mlp_out", "resid_post"]
    if not parallel:
        hooks.insert(2, "resid_mid")
    out = work / f"{arch}_{dtype}.zarr"
    rep = extract(model=model, prompts=prompts(args.n_prompts), out=out, layers="all",
                  hooks=hooks, dtype=dtype, device=args.device, progress=False,
                  max_batch_tokens=args.max_batch_tokens)  # fmt: skip
    ver = verify_against_model(out, model, sample=None, device=args.device)
    n = sum(r.n_values for r in ver.results)
    over4 = sum(r.ulp_counts["5-16"] + r.ulp_counts[">16"] for r in ver.results)
    bad = [f"{r.hook} layer {r.layer}" for r in ver.results if not r.ok]
    return {
        "family": arch,
        "dtype": dtype,
        "ratio": max(r.worst["diff_over_allowed"] for r in ver.results if r.worst),
        "max_abs": max(r.max_abs_diff for r in ver.results),
        "over4": over4 / n,
        "verdict": "pass" if ver.ok else f"FAIL ({', '.join(bad)})",
        "padding": rep.plan.padding_fraction_batches,
    }


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = (r["family"], r["dtype"], f"{r['ratio']:.3g}", f"{r['max_abs']:.3g}",
                 f"{r['over4']:.2%}", r["verdict"])  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(args: argparse.Namespace, rows: list[dict[str, Any]]) -> str:
    lo, hi = min(r["padding"] for r in rows), max(r["padding"] for r in rows)
    pad = f"{lo:.1%}" if f"{lo:.1%}" == f"{hi:.1%}" else f"{lo:.1%}-{hi:.1%}"
    return "\n".join(
        [
            f"Machine: {machine(args.device)}.",
            f"Models: random, {args.n_layers} layers, d_model {args.d_model}, {args.n_heads} "
            f"heads; {args.n_prompts} prompts in padded batches of at most "
            f"{args.max_batch_tokens} tokens ({pad} padding), every hook, "
            "every layer, every prompt re-run alone. Command: "
            "`python benchmarks/verify_tolerance.py --write-docs`.",
            "",
            render(rows),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--n-prompts", type=int, default=32)
    p.add_argument("--max-batch-tokens", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--write-docs", action="store_true", help=f"rewrite {DOC.name}'s section")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.families.split(","):
            for dtype in ("float32", "bfloat16"):
                rows.append(measure_one(arch, dtype, args, Path(tmp)))
                print(render(rows[-1:]).splitlines()[-1], flush=True)
    text = section(args, rows)
    print(text)
    if args.write_docs:
        _write(text)
    return 0


def _write(text: str) -> None:
    import re

    begin, end = "<!-- BEGIN verify-tolerance -->", "<!-- END verify-tolerance -->"
    body = DOC.read_text()
    block = f"{begin}\n{text}\n{end}"
    if begin not in body:
        raise SystemExit(f"expected the markers {begin} / {end} in {DOC}, got none")
    body = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S).sub(lambda _: block, body)
    DOC.write_text(body)


if __name__ == "__main__":
    raise SystemExit(main())
