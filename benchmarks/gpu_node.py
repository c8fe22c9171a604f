"""GPU-node benchmark (one prepared script, <= 8 minutes on one H200): extract vs bare forward.

A random Qwen2 of Qwen2.5-32B's width (d_model 5120, intermediate 27648, 40 heads / 8 KV heads),
cut to 16 layers, bfloat16, built directly on the GPU; 2,000 multiplication prompts. Side by side
in one run:

  (a) bare forward (load + tokenize + forwards, no capture);
  (b7) ``extract`` with 7 layers captured; (ball) ``extract`` with every layer;
  (w) the store's write path on this node's cores: one core's bare numcodecs zstd-1 encode of a
      shard's inner chunks (1.0x) vs ``PromptSetWriter.write_block`` with every core, same bytes
      (bf16 shards of 64 prompts x 7 layers x 32 tokens x 5120).

Targets (issue 11): (b7)/(a) <= 1.10, (ball)/(a) <= 1.3, writer >= 8x one core on 16 cores.
``--smoke`` runs a tiny shape on CPU in seconds (the test suite checks the script works).

    python benchmarks/gpu_node.py --write-docs      # on the GPU node; updates docs/write-path.md
    python benchmarks/gpu_node.py --smoke           # anywhere: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _p in (HERE.parent / "src", HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import extract as bench  # noqa: E402  (benchmarks/extract.py: run_bare, run_actstore)
from extract_gpu import SHAPES, build_gpu_model  # noqa: E402


def writer_rates(d_model: int, n_shards: int, repeat: int) -> dict[str, float]:
    """MB/s of one core's bare zstd-1 encode and of write_block with every core, same bytes."""
    import shutil

    from write_path import actstore_write, bare_encode, make_data

    from actstore.store.core import set_write_threads, write_threads

    data = make_data(n_shards, 64, 7, 32, d_model)
    bare = bare_encode(data)
    pool = actstore_write(data, 64, write_threads(), "zstd:1", inflight=2)
    t_bare, t_pool = [], []
    tmp = Path(tempfile.mkdtemp(prefix="actstore-gpu-node-w-"))
    try:
        for r in range(repeat):
            t0 = time.perf_counter()
            bare()
            t_bare.append(time.perf_counter() - t0)
            writer = pool.setup(tmp / f"w{r}.zarr")  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            pool(writer)
            t_pool.append(time.perf_counter() - t0)
            shutil.rmtree(tmp / f"w{r}.zarr")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        set_write_threads(None)
    mb = data.nbytes / 1e6
    return {
        "bytes": data.nbytes,
        "threads": write_threads(),
        "bare_zstd1_one_core_mbs": mb / statistics.median(t_bare),
        "write_block_all_cores_mbs": mb / statistics.median(t_pool),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n-prompts", type=int, default=2000)
    ap.add_argument("--layers-total", type=int, default=16)
    ap.add_argument("--capture", type=int, default=7)
    ap.add_argument("--max-batch-tokens", type=int, default=16384)
    ap.add_argument("--smoke", action="store_true", help="tiny shape on CPU: checks it runs")
    ap.add_argument("--write-docs", action="store_true", help="update docs/write-path.md")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--workdir", help="checkpoint and caches (default: a temp dir)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    import torch

    shape = dict(SHAPES["32b"], num_hidden_layers=args.layers_total)
    device, dtype = "cuda", "bfloat16"
    w_d, w_shards, w_repeat = shape["hidden_size"], 4, 3
    if args.smoke:
        device = "cpu"
        shape.update(hidden_size=64, intermediate_size=128, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=1024)  # fmt: skip
        args.n_prompts = min(args.n_prompts, 24)
        args.layers_total = shape["num_hidden_layers"] = min(args.layers_total, 4)
        args.capture = min(args.capture, 2)
        w_d, w_shards, w_repeat = 256, 1, 1
    elif not torch.cuda.is_available():
        sys.exit("no CUDA device: pass --smoke to check the script on CPU")
    n_layers = shape["num_hidden_layers"]
    step = max(1, n_layers // args.capture)
    some = sorted({min(n_layers - 1, step * (i + 1) - 1) for i in range(args.capture)})
    every = list(range(n_layers))

    from actstore.prompts import load_prompts

    prompts = load_prompts("multiplication", n=args.n_prompts, seed=0)
    res: dict[str, Any] = {"shape": shape, "layers_some": some, "dtype": dtype}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        model_dir = build_gpu_model(Path(tmp) / "model", shape, device=device, dtype=dtype)
        res["build_s"] = time.perf_counter() - t0
        kw = dict(dtype=dtype, device=device, max_batch_tokens=args.max_batch_tokens)
        bench.run_bare(model_dir, prompts[:8], **kw)  # warm-up: kernels, allocator, page cache
        res["a_bare_s"] = bench.run_bare(model_dir, prompts, **kw)
        for key, layers in (("some", some), ("all", every)):
            t, rep = bench.run_actstore(
                model_dir, prompts, Path(tmp) / f"{key}.zarr", layers=layers, **kw
            )
            res[f"b_{key}_s"] = t
            res[f"b_{key}_bytes"] = int(rep.plan.bytes_uncompressed)
            res["tokens"] = int(rep.plan.n_tokens_total)
        if device == "cuda":
            res["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    res["writer"] = writer_rates(w_d, w_shards, w_repeat)
    res["total_s"] = time.perf_counter() - t_start
    text = table(res, args, device)
    print(text)
    if args.write_docs and not args.smoke:
        from _docs import write_section

        print("wrote", write_section("write-path.md", "gpu-table", text))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))
    return res


def table(res: dict[str, Any], args: argparse.Namespace, device: str) -> str:
    from _docs import machine

    a = res["a_bare_s"]
    w = res["writer"]
    s = res["shape"]
    lines = [
        f"Random Qwen2 of Qwen2.5-32B's width: d_model {s['hidden_size']}, intermediate "
        f"{s['intermediate_size']}, {s['num_attention_heads']} heads / "
        f"{s['num_key_value_heads']} KV heads, {s['num_hidden_layers']} layers, bfloat16 on "
        f"{device}; {args.n_prompts} multiplication prompts ({res['tokens']} tokens); model "
        f"built in {res['build_s']:.0f} s; whole script {res['total_s']:.0f} s.",
        "",
        "| run | seconds | ratio | activations written |",
        "| --- | ---: | ---: | ---: |",
        f"| (a) bare forward, no capture | {a:.2f} | 1.00 x (a) | |",
    ]
    for key, what, target in (("some", res["layers_some"], "1.10"), ("all", "all", "1.3")):
        b, nbytes = res[f"b_{key}_s"], res[f"b_{key}_bytes"]
        n = len(what) if isinstance(what, list) else s["num_hidden_layers"]
        lines.append(
            f"| (b) extract, {n} layers | {b:.2f} | {b / a:.2f} x (a) (target <= {target}) | "
            f"{nbytes / 1e9:.2f} GB, {nbytes / b / 1e6:,.0f} MB/s over the whole run |"
        )
    ratio = w["write_block_all_cores_mbs"] / w["bare_zstd1_one_core_mbs"]
    lines += [
        "",
        "| write path (same bf16 bytes) | MB/s | vs one core |",
        "| --- | ---: | ---: |",
        f"| numcodecs zstd-1 encode, one core, no I/O | {w['bare_zstd1_one_core_mbs']:,.0f} | "
        "1.00x |",
        f"| actstore write_block, {w['threads']} encode threads, 2 blocks in flight | "
        f"{w['write_block_all_cores_mbs']:,.0f} | {ratio:.2f}x (target >= 8 on 16 cores) |",
        "",
        f"Machine: {machine()}"
        + (" (--smoke: a tiny CPU check, not a measurement)." if args.smoke else "."),
        "",
        "Reproduce: `PYTHONPATH=src python benchmarks/gpu_node.py --write-docs`",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
