"""How far padded bfloat16 batches are from single-prompt forwards, measured (docs/numerics.md).

Extracts the same prompts twice with ``actstore.extractors.extract`` in bfloat16: once one prompt
per forward pass (``--max-batch-tokens 1``: no padding, bit-identical to the model's own bf16
output, see tests/extractors/test_activations.py) and once in padded batches (prompts of very
different lengths side by side). It compares every real token's stored value and counts the
distance in bf16 ulps (units in the last place: how many bf16 numbers lie between the two),
per layer:

    python benchmarks/bf16_padding.py                      # print the table (CPU or the GPU)
    python benchmarks/bf16_padding.py --write-docs         # also rewrite docs/numerics.md's
                                                           # section for this device kind

The model is a random-initialised Qwen2 from ``actstore.tinymodels`` (default d_model 256,
4 layers); the prompts are multiplication sentences behind 0-20 filler words.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

DOC = HERE.parent / "docs" / "numerics.md"
#: buckets of the ulp distance: (label, low, high) inclusive
BUCKETS = (("0 ulp", 0, 0), ("1 ulp", 1, 1), ("2-4 ulp", 2, 4), ("> 4 ulp", 5, None))
HEADER = ("layer", "values", *(b[0] for b in BUCKETS), "max abs diff", "RMS of the values")


def begin_marker(kind: str) -> str:
    return f"<!-- BEGIN bf16-padding {kind} -->"


def end_marker(kind: str) -> str:
    return f"<!-- END bf16-padding {kind} -->"


def prompts(n: int, seed: int = 0) -> Any:
    """*n* multiplication prompts behind 0-20 filler words (lengths differ a lot)."""
    from actstore.prompts import Prompt, PromptSet

    rng = np.random.default_rng(seed)
    words = ["seven", "times", "eight", "equals", "the", "product", "of", "and", "is", "mass"]
    out = []
    for _ in range(n):
        x, y = int(rng.integers(2, 20)), int(rng.integers(2, 20))
        filler = " ".join(rng.choice(words, size=int(rng.integers(0, 21))))
        out.append(Prompt(text=f"{filler} {x} times {y} equals {x * y}".strip()))
    return PromptSet(name="padding", prompts=tuple(out))


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of bf16 values between *a* and *b* (bf16 arrays of one shape; -0 equals +0)."""

    def ordered(x: np.ndarray) -> np.ndarray:
        bits = x.view(np.int16).astype(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFF), bits)

    return np.abs(ordered(a) - ordered(b))


def compare(single: np.ndarray, padded: np.ndarray, n_tokens: np.ndarray) -> list[dict[str, Any]]:
    """Per-layer rows: value count, counts per ulp bucket, max abs diff, RMS of the values.

    Near zero a bf16 ulp is tiny, so a small absolute difference there is many ulps (across
    zero, thousands): the RMS column gives the scale the absolute differences compare with.

    *single*, *padded*: bf16 ``(prompt, layer, token, d_model)``; only the first
    ``n_tokens[p]`` tokens of each prompt are real and compared.
    """
    real = np.arange(single.shape[2])[None, :] < n_tokens[:, None]  # (prompt, token)
    rows = []
    for li in range(single.shape[1]):
        a = single[:, li][real]  # (real tokens, d_model)
        b = padded[:, li][real]
        ulp = ulp_distance(a, b).ravel()
        diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).ravel()
        row: dict[str, Any] = {"values": int(ulp.size)}
        for label, lo, hi in BUCKETS:
            row[label] = int(np.sum((ulp >= lo) & ((ulp <= hi) if hi is not None else True)))
        row["max abs diff"] = float(diff.max()) if diff.size else 0.0
        ref = a.astype(np.float64)
        row["rms"] = float(np.sqrt(np.mean(ref**2))) if ref.size else 0.0
        rows.append(row)
    return rows


def render(rows: list[dict[str, Any]], layers: list[int]) -> str:
    """Markdown table: one row per layer and a total row."""

    def cells(name: str, row: dict[str, Any]) -> str:
        n = row["values"]
        out = [name, f"{n:,}"]
        for label, _, _ in BUCKETS:
            c = row[label]
            out.append(f"{c:,} ({100 * c / n:.2f}%)" if n else "0")
        out += [f"{row['max abs diff']:.6g}", f"{row['rms']:.4g}"]
        return "| " + " | ".join(out) + " |"

    keys = ("values", *(b[0] for b in BUCKETS))
    total: dict[str, Any] = {k: sum(r[k] for r in rows) for k in keys}
    total["max abs diff"] = max(r["max abs diff"] for r in rows)
    n = max(total["values"], 1)
    total["rms"] = float(np.sqrt(sum(r["rms"] ** 2 * r["values"] for r in rows) / n))
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += [cells(str(layer), r) for layer, r in zip(layers, rows)]
    lines.append(cells("all", total))
    return "\n".join(lines)


def machine(device: str) -> str:
    import torch
    import transformers

    if device.startswith("cuda"):
        where = torch.cuda.get_device_name(torch.device(device))
    else:
        where = f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads"
    return (
        f"{where}; {platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )


def measure(
    *, d_model: int, n_layers: int, n_heads: int, n_prompts: int, max_batch_tokens: int,
    device: str, work: Path, seed: int = 0,
) -> tuple[list[dict[str, Any]], list[int], dict[str, Any]]:  # fmt: skip
    """Build the model, extract twice, compare. Returns ``(rows, layers, setup)``."""
    import zarr

    from actstore.extractors import extract
    from actstore.tinymodels import build_random_model

    model = build_random_model(
        work / "model", arch="qwen2", n_layers=n_layers, d_model=d_model, n_heads=n_heads,
        seed=seed,
    )  # fmt: skip
    ps = prompts(n_prompts, seed)
    kw = dict(model=model, prompts=ps, layers="all", dtype="bfloat16", device=device,
              progress=False)  # fmt: skip
    extract(out=work / "single.zarr", max_batch_tokens=1, **kw)
    rep = extract(out=work / "padded.zarr", max_batch_tokens=max_batch_tokens, **kw)
    import actstore.store  # noqa: F401  (registers the bfloat16 data type)

    got = {}
    for name in ("single", "padded"):
        g = zarr.open_group(str(work / f"{name}.zarr"), mode="r")["padding"]
        got[name] = np.asarray(g["resid_post"][:])
        n_tokens = np.asarray(g["n_tokens"][:])
        layers = [int(x) for x in np.asarray(g["layer"][:])]
    rows = compare(got["single"], got["padded"], n_tokens)
    setup = {
        "batches": rep.plan.batches_this_shard,
        "padding": rep.plan.padding_fraction_batches,
        "tokens": int(n_tokens.sum()),
    }
    return rows, layers, setup


def section(args: argparse.Namespace, rows: list, layers: list[int], setup: dict) -> str:
    cmd = "python benchmarks/bf16_padding.py --write-docs" + (
        f" --device {args.device}" if args.device != "auto" else ""
    )
    return "\n".join(
        [
            f"Machine: {machine(args.device)}.",
            f"Model: random Qwen2, d_model {args.d_model}, {args.n_layers} layers, "
            f"{args.n_heads} heads; {args.n_prompts} prompts ({setup['tokens']:,} tokens) in "
            f"{setup['batches']} padded batches of at most {args.max_batch_tokens} tokens "
            f"({setup['padding']:.1%} padding). Command: `{cmd}`.",
            "",
            render(rows, layers),
        ]
    )


def write_doc(kind: str, text: str, doc: Path = DOC) -> None:
    """Replace (or append) the section of device kind *kind* between its markers."""
    body = doc.read_text()
    begin, end = begin_marker(kind), end_marker(kind)
    block = f"{begin}\n{text}\n{end}"
    if begin in body:
        pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        body = pat.sub(lambda _: block, body)
    else:
        body = body.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--n-prompts", type=int, default=64)
    p.add_argument("--max-batch-tokens", type=int, default=512)
    p.add_argument("--device", default="auto")
    p.add_argument("--write-docs", action="store_true", help=f"rewrite {DOC.name}'s section")
    args = p.parse_args(argv)
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        rows, layers, setup = measure(
            d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads,
            n_prompts=args.n_prompts, max_batch_tokens=args.max_batch_tokens,
            device=args.device, work=Path(tmp),
        )  # fmt: skip
    text = section(args, rows, layers, setup)
    print(text)
    if args.write_docs:
        write_doc("cuda" if args.device.startswith("cuda") else "cpu", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
