"""GPU benchmark: the extract comparison of benchmarks/extract.py on a real large model shape.

Builds a random-initialised Qwen2 of a real shape (default: Qwen2.5-7B's config; --shape 32b for
Qwen2.5-32B) in bfloat16 directly on the GPU (meta-device construction, then in-place normal init
on the GPU: seconds, not minutes), saves it as a local checkpoint with a small test tokenizer (the
vocabulary's first ids only), then runs (a) bare forward, (b) actstore extract, (c) the seed's
run_with_cache-per-layer pattern, and prints the table with the device name.

    python benchmarks/extract_gpu.py                         # Qwen2.5-7B shape, 28 layers
    python benchmarks/extract_gpu.py --shape 32b --layers-total 16 --n-prompts 500
    python benchmarks/extract_gpu.py --cpu-tiny               # a tiny CPU check that it all runs

Options --layers-total, --d-model and --n-prompts shrink or grow the run to fit the time at hand.
(c) needs transformer_lens; --skip-tlens drops it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import extract as bench  # noqa: E402  (benchmarks/extract.py, the shared runners)

SHAPES: dict[str, dict[str, Any]] = {
    "7b": {  # Qwen2.5-7B config.json
        "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06,
        "tie_word_embeddings": False,
    },
    "32b": {  # Qwen2.5-32B config.json
        "hidden_size": 5120, "intermediate_size": 27648, "num_hidden_layers": 64,
        "num_attention_heads": 40, "num_key_value_heads": 8, "vocab_size": 152064,
        "max_position_embeddings": 131072, "rope_theta": 1000000.0, "rms_norm_eps": 1e-05,
        "tie_word_embeddings": False,
    },
}  # fmt: skip


def build_gpu_model(out: Path, shape: dict[str, Any], *, device: str, dtype: str) -> Path:
    """A random Qwen2 of *shape*, initialised on *device* and saved with a tiny tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from actstore.tinymodels import build_tokenizer

    build_tokenizer(out)
    cfg = Qwen2Config(**shape, torch_dtype=dtype, use_cache=False)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(cfg)
    model = model.to_empty(device=device).to(getattr(torch, dtype))
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.02, generator=gen)
            else:
                p.normal_(0.0, 0.02, generator=gen)
        for buf_name, buf in model.named_buffers():
            if "inv_freq" in buf_name:  # rotary frequencies are computed, not loaded
                dim = buf.shape[0] * 2
                base = shape["rope_theta"]
                buf.copy_(1.0 / (base ** (torch.arange(0, dim, 2, device=device).float() / dim)))
    model.save_pretrained(out)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    p.add_argument("--layers-total", type=int, help="depth (default: the shape's)")
    p.add_argument("--d-model", type=int, help="width (default: the shape's; heads scale along)")
    p.add_argument("--n-prompts", type=int, default=500)
    p.add_argument("--capture", type=int, default=7, help="layers captured (spread over depth)")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--skip-tlens", action="store_true")
    p.add_argument("--cpu-tiny", action="store_true", help="tiny shape on CPU: checks it runs")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--workdir", help="where the checkpoint and caches go (default: a temp dir)")
    args = p.parse_args(argv)

    import torch

    shape = dict(SHAPES[args.shape])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.cpu_tiny:
        device, args.dtype = "cpu", "float32"
        shape.update(hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, vocab_size=1024)  # fmt: skip
        args.n_prompts = min(args.n_prompts, 40)
        args.capture = min(args.capture, 3)
        args.repeats = 1
    elif device == "cpu":
        sys.exit("no CUDA device: run benchmarks/extract.py on CPU, or pass --cpu-tiny to check")
    if args.layers_total:
        shape["num_hidden_layers"] = args.layers_total
    if args.d_model:
        ratio = args.d_model / shape["hidden_size"]
        head_dim = shape["hidden_size"] // shape["num_attention_heads"]
        shape["hidden_size"] = args.d_model
        shape["num_attention_heads"] = max(1, args.d_model // head_dim)
        shape["num_key_value_heads"] = max(
            1, min(shape["num_key_value_heads"], shape["num_attention_heads"])
        )
        while shape["num_attention_heads"] % shape["num_key_value_heads"]:
            shape["num_key_value_heads"] -= 1
        shape["intermediate_size"] = int(shape["intermediate_size"] * ratio)
    n_layers = shape["num_hidden_layers"]
    step = max(1, n_layers // args.capture)
    layers = sorted({min(n_layers - 1, step * (i + 1) - 1) for i in range(args.capture)})

    from actstore.prompts import load_prompts

    prompts = load_prompts("multiplication", n=args.n_prompts, seed=0)
    dev_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    res: dict[str, Any] = {
        "device": dev_name,
        "shape": shape,
        "layers": layers,
        "dtype": args.dtype,
    }
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        model_dir = build_gpu_model(Path(tmp) / "model", shape, device=device, dtype=args.dtype)
        res["build_s"] = time.perf_counter() - t0
        kw = dict(dtype=args.dtype, device=device, max_batch_tokens=args.max_batch_tokens)
        bench.run_bare(model_dir, prompts[:8], **kw)  # warm-up: kernels, allocator, page cache
        bench.run_actstore(model_dir, prompts[:8], Path(tmp) / "warm.zarr", layers=layers, **kw)
        a, b = [], []
        for r in range(args.repeats):
            a.append(bench.run_bare(model_dir, prompts, **kw))
            t, rep = bench.run_actstore(
                model_dir, prompts, Path(tmp) / f"c{r}.zarr", layers=layers, **kw
            )
            b.append(t)
        res["tokens"] = int(rep.plan.n_tokens_total)
        res["cache_bytes_uncompressed"] = int(rep.plan.bytes_uncompressed)
        res["a_bare_forward_s"], res["b_actstore_extract_s"] = min(a), min(b)
        if not args.skip_tlens:
            try:
                res["c_seed_pattern_s"] = bench.run_seed_pattern(
                    model_dir, prompts, layers=layers, dtype=args.dtype, device=device
                )
            except ImportError as exc:
                res["c_skipped"] = f"transformer_lens not importable: {exc}"
        if device == "cuda":
            res["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    a, b, c = res["a_bare_forward_s"], res["b_actstore_extract_s"], res.get("c_seed_pattern_s")
    print(f"device: {dev_name}")
    print(
        f"model: random Qwen2 ({args.shape} shape) d_model {shape['hidden_size']}, {n_layers} "
        f"layers, {args.dtype}; {args.n_prompts} prompts ({res['tokens']} tokens); layers "
        f"{layers} captured; build {res['build_s']:.0f} s"
    )
    print("| run | seconds | ratio |")
    print("| --- | ---: | ---: |")
    print(f"| (a) bare forward, no capture | {a:.2f} | 1.00 x (a) |")
    print(f"| (b) actstore extract into a cache | {b:.2f} | {b / a:.2f} x (a) |")
    if c is not None:
        print(f"| (c) seed pattern: run_with_cache per layer | {c:.2f} | {c / b:.1f} x (b) |")
    elif "c_skipped" in res:
        print(f"| (c) skipped | | {res['c_skipped']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
