"""Benchmark of `actstore extract` against a bare forward pass and the seed script's pattern.

On a random-initialised Qwen2 (default d_model 512, 8 layers, 500 multiplication prompts, 7 layers
captured) it measures, side by side in one run:

  (a) bare forward passes with no capture (model load + tokenization + forwards over the same
      length-grouped batches);
  (b) `actstore.extractors.extract()` into a fresh cache (everything: load, tokenize, forward
      with hooks, device-to-host copies, compressed zarr writes, bookkeeping);
  (c) the reference script's pattern: a TransformerLens `run_with_cache` pass per layer over
      batches of 16 zero-padded prompts, every activation kept in memory as float32.

and prints (b)/(a) (target <= 1.10) and (c)/(b) (target >= 6), then the peak RSS of (b) run in a
subprocess for 500 and 2,000 prompts (host memory is bounded by two batching windows of blocks,
not the prompt count: docs/write-path.md).

    python benchmarks/extract.py                      # the issue's configuration (CPU)
    python benchmarks/extract.py --n-prompts 40 --d-model 64 --layers-total 4 --capture 3 --quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


def build_model(out: Path, *, d_model: int, n_layers: int, n_heads: int, seed: int = 0) -> Path:
    from actstore.tinymodels import build_random_model

    return build_random_model(
        out, arch="qwen2", n_layers=n_layers, d_model=d_model, n_heads=n_heads, seed=seed
    )


def capture_layers(n_layers: int, n_capture: int) -> list[int]:
    """The deepest ``n_capture`` blocks (the last one included: no early stop helps (b))."""
    return list(range(n_layers - n_capture, n_layers))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_bare(
    model_dir: Path, prompts: Any, *, dtype: str, device: str, max_batch_tokens: int
) -> float:
    """(a): load, tokenize, forward the base model over length-grouped batches; no hooks."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from actstore.extractors._batching import plan_batches

    _sync(device)
    t0 = time.perf_counter()
    kw: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if device.startswith("cuda"):
        kw["device_map"] = device
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kw).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ids = tok([p.text for p in prompts.prompts])["input_ids"]
    import numpy as np

    n_tokens = np.array([len(x) for x in ids])
    batches = plan_batches(n_tokens, [(0, 0, len(ids))], max_batch_tokens)
    with torch.inference_mode():
        for b in batches:
            x = torch.zeros((len(b.indices), b.seq_len), dtype=torch.long)
            m = torch.zeros_like(x)
            for j, i in enumerate(b.indices):
                x[j, : len(ids[i])] = torch.tensor(ids[i])
                m[j, : len(ids[i])] = 1
            model.base_model(input_ids=x.to(device), attention_mask=m.to(device), use_cache=False)
    _sync(device)
    return time.perf_counter() - t0


def run_actstore(
    model_dir: Path, prompts: Any, out: Path, *, layers: list[int], dtype: str, device: str,
    max_batch_tokens: int,
) -> tuple[float, Any]:  # fmt: skip
    """(b): the whole extract() call into a fresh cache."""
    from actstore.extractors import extract

    _sync(device)
    t0 = time.perf_counter()
    rep = extract(
        model=model_dir, prompts=prompts, out=out, layers=layers, dtype=dtype, device=device,
        max_batch_tokens=max_batch_tokens, progress=False,
    )  # fmt: skip
    _sync(device)
    return time.perf_counter() - t0, rep


def run_seed_pattern(
    model_dir: Path,
    prompts: Any,
    *,
    layers: list[int],
    dtype: str,
    device: str,
    batch_size: int = 16,
) -> float:
    """(c): TransformerBridge, one run_with_cache pass per layer, kept in memory (the seed)."""
    import torch
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    _sync(device)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = TransformerBridge.boot_transformers(
        str(model_dir), dtype=getattr(torch, dtype), device=device, tokenizer=tok
    )
    texts = [p.text for p in prompts.prompts]
    kept: dict[int, Any] = {}
    for layer in layers:
        hook_name = f"blocks.{layer}.hook_resid_post"
        acts = []
        for i in range(0, len(texts), batch_size):
            rows = [tok(t)["input_ids"] for t in texts[i : i + batch_size]]
            width = max(len(r) for r in rows)
            x = torch.zeros((len(rows), width), dtype=torch.long)
            for j, r in enumerate(rows):
                x[j, : len(r)] = torch.tensor(r)
            with torch.no_grad():
                _, cache = model.run_with_cache(
                    x.to(device), names_filter=lambda name, h=hook_name: name == h
                )
            batch_acts = cache[hook_name]
            for j, r in enumerate(rows):
                acts.append(batch_acts[j, : len(r)].cpu().float())
        kept[layer] = torch.cat(acts, dim=0).numpy()
    _sync(device)
    return time.perf_counter() - t0


def child_rss(args: argparse.Namespace) -> None:
    """Subprocess body: run (b) once and print its peak RSS."""
    from actstore.prompts import load_prompts

    prompts = load_prompts("multiplication", n=args.n_prompts, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        t, rep = run_actstore(
            Path(args.model_dir), prompts, Path(tmp) / "c.zarr",
            layers=capture_layers(args.layers_total, args.capture), dtype=args.dtype,
            device=args.device, max_batch_tokens=args.max_batch_tokens,
        )  # fmt: skip
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rss": rss, "seconds": t, "bytes": rep.plan.bytes_uncompressed}))


def measure_rss(args: argparse.Namespace, model_dir: Path, n: int) -> dict[str, float]:
    cmd = [
        sys.executable, __file__, "--child-rss", "--model-dir", str(model_dir), "--n-prompts",
        str(n), "--layers-total", str(args.layers_total), "--capture", str(args.capture),
        "--dtype", args.dtype, "--device", args.device, "--max-batch-tokens",
        str(args.max_batch_tokens),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n-prompts", type=int, default=500)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--n-heads", type=int, default=8)
    p.add_argument("--layers-total", type=int, default=8)
    p.add_argument("--capture", type=int, default=7, help="layers captured (the deepest ones)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-batch-tokens", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=2, help="(a) and (b) repeats; best is kept")
    p.add_argument("--rss-prompts", default="500,2000", help="prompt counts for the RSS rows")
    p.add_argument("--skip-tlens", action="store_true", help="skip (c)")
    p.add_argument("--quick", action="store_true", help="one repeat, RSS at n and 4n prompts")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--write-docs", action="store_true", help="update docs/write-path.md")
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--child-rss", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child_rss:
        child_rss(args)
        return {}
    import platform

    import torch

    from actstore.prompts import load_prompts

    if args.quick:
        args.repeats = 1
        args.rss_prompts = f"{args.n_prompts},{4 * args.n_prompts}"
    layers = capture_layers(args.layers_total, args.capture)
    prompts = load_prompts("multiplication", n=args.n_prompts, seed=0)
    res: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}",
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        "config": {k: v for k, v in vars(args).items() if k not in ("model_dir", "child_rss")},
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir) if args.model_dir else build_model(
            Path(tmp) / "model", d_model=args.d_model, n_layers=args.layers_total,
            n_heads=args.n_heads,
        )  # fmt: skip
        kw = dict(dtype=args.dtype, device=args.device, max_batch_tokens=args.max_batch_tokens)
        # warm-up of both: imports, allocator, kernels (not part of either measurement)
        run_bare(model_dir, prompts[:8], **kw)
        run_actstore(model_dir, prompts[:8], Path(tmp) / "warm.zarr", layers=layers, **kw)
        a, b = [], []
        for r in range(args.repeats):  # interleaved, so background load hits both alike
            a.append(run_bare(model_dir, prompts, **kw))
            t, rep = run_actstore(model_dir, prompts, Path(tmp) / f"c{r}.zarr", layers=layers, **kw)
            b.append(t)
            print(f"repeat {r}: (a) {a[-1]:.2f} s, (b) {b[-1]:.2f} s", file=sys.stderr, flush=True)
        res["tokens"] = int(rep.plan.n_tokens_total)
        res["cache_bytes_uncompressed"] = int(rep.plan.bytes_uncompressed)
        res["a_bare_forward_s"] = min(a)
        res["b_actstore_extract_s"] = min(b)
        if not args.skip_tlens:
            res["c_seed_pattern_s"] = run_seed_pattern(
                model_dir, prompts, layers=layers, dtype=args.dtype, device=args.device
            )
            print(f"(c) {res['c_seed_pattern_s']:.2f} s", file=sys.stderr, flush=True)
        res["rss"] = {}
        for n in [int(x) for x in args.rss_prompts.split(",") if x]:
            res["rss"][n] = measure_rss(args, model_dir, n)
            print(f"rss {n}: {res['rss'][n]}", file=sys.stderr, flush=True)
    text = print_table(res)
    if args.write_docs:
        sys.path.insert(0, str(HERE))
        from _docs import machine, write_section

        text += (
            f"\n\nMachine: {machine()}.\n\nReproduce: `PYTHONPATH=src python "
            "benchmarks/extract.py --write-docs`"
        )
        print("wrote", write_section("write-path.md", "extract-table", text))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


def print_table(res: dict[str, Any]) -> str:
    a, b = res["a_bare_forward_s"], res["b_actstore_extract_s"]
    c = res.get("c_seed_pattern_s")
    cfg = res["config"]
    out = [
        f"device: {res['device']} ({res['machine']})",
        f"model: random Qwen2 d_model {cfg['d_model']}, {cfg['layers_total']} layers, "
        f"{cfg['dtype']}; {cfg['n_prompts']} multiplication prompts ({res['tokens']} tokens), "
        f"{cfg['capture']} layers captured; best of {cfg['repeats']} interleaved repeats",
        "",
        "| run | seconds | ratio |",
        "| --- | ---: | ---: |",
        f"| (a) bare forward, no capture | {a:.2f} | 1.00 x (a) |",
        f"| (b) actstore extract into a cache | {b:.2f} | {b / a:.2f} x (a) (target <= 1.10) |",
    ]
    if c is not None:
        out.append(
            f"| (c) seed pattern: run_with_cache per layer, in memory | {c:.2f} | "
            f"{c / b:.1f} x (b) (target >= 6) |"
        )
    out += [
        "",
        "| prompts | cache size before compression | peak RSS of (b) |",
        "| ---: | ---: | ---: |",
    ]
    for n, r in res["rss"].items():
        out.append(f"| {n} | {r['bytes'] / 2**20:.0f} MiB | {r['rss'] / 2**20:.0f} MiB |")
    text = "\n".join(out)
    print(text)
    return text


if __name__ == "__main__":
    main()
