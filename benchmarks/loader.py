"""ActivationLoader throughput against a plain numpy read of the same real tokens, in one run.

A synthetic bfloat16 cache (default 1000 ragged prompts of 16..64 tokens x 3 layers x d_model
1024, 393 MB padded) is written once; then, each timed with its files in the OS page cache:

* **numpy**: for each shard and layer, ``zarr`` reads the block into numpy, a boolean mask keeps
  the real tokens, converted to float32 rows ``(token, layer, d_model)``: the plain read anyone
  would write, no shuffle;
* **loader**: one epoch of :class:`actstore.torch.ActivationLoader` (shuffled, float32 batches
  of 4096), all layers and one layer; and unshuffled;
* **SAELens** (where it is importable, or ``ACTSTORE_SAELENS_PYTHON`` names an interpreter where
  it is): the cache exported with ``actstore export --format hf-datasets``, read through SAELens's
  ``ActivationsStore`` cached-activation path, one layer, batches of 4096 tokens.

    PYTHONPATH=src python benchmarks/loader.py                 # about a minute
    PYTHONPATH=src python benchmarks/loader.py --write-docs    # also update docs/sae-training.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DOC = Path(__file__).resolve().parents[1] / "docs" / "sae-training.md"
BEGIN, END = "<!-- BEGIN loader-benchmark -->", "<!-- END loader-benchmark -->"

_SAELENS_WORKER = r"""
import sys, time, torch
from sae_lens.training.activations_store import ActivationsStore
path, column, ctx, d, rows_per_batch = sys.argv[1:6]
ctx, d, rows_per_batch = int(ctx), int(d), int(rows_per_batch)
best = None
for _ in range(2):
    store = ActivationsStore(
        model=None, dataset=None, streaming=False, hook_name=column, hook_head_index=None,
        context_size=ctx, d_in=d, n_batches_in_buffer=2, total_training_tokens=10**12,
        store_batch_size_prompts=rows_per_batch, train_batch_size_tokens=4096,
        prepend_bos=False, normalize_activations="none", device=torch.device("cpu"),
        dtype="float32", cached_activations_path=path,
    )
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        while True:
            acts, _ = store.get_raw_llm_batch(raise_on_epoch_end=True)
            n += acts.shape[0]
    except StopIteration:
        pass
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    best = (dt, dc) if best is None else (min(best[0], dt), min(best[1], dc))
print(n, *best)
"""


def build(path: Path, n_prompts: int, n_layers: int, t_max: int, d: int) -> np.ndarray:
    from actstore.store import BFLOAT16, PromptSetMetadata, PromptSetSpec, create_cache

    rng = np.random.default_rng(0)
    nt = rng.integers(t_max // 4, t_max + 1, n_prompts)
    spec = PromptSetSpec(
        n_prompts=n_prompts,
        n_tokens_max=t_max,
        layers=tuple(range(n_layers)),
        d_model=d,
        dtype="bfloat16",
    )
    meta = PromptSetMetadata(
        text=[f"p{i}" for i in range(n_prompts)],
        n_tokens=nt,
        token_id=rng.integers(0, 1000, (n_prompts, t_max)),
        token_str=np.full((n_prompts, t_max), "t", dtype=object),
    )
    writer = create_cache(path).prompt_set_writer("bench", spec, meta)
    for b in range(writer.n_blocks):
        start, stop = writer.block_range(b)
        x = rng.standard_normal((stop - start, n_layers, t_max, d), dtype=np.float32)
        x *= (np.arange(t_max)[None, :] < nt[start:stop, None])[:, None, :, None]
        writer.write_block(b, {"resid_post": x.astype(BFLOAT16)})
    return nt


def numpy_read(path: Path, nt: np.ndarray, layers: list[int] | None) -> tuple[int, float, float]:
    """The plain read: per shard and layer, zarr -> numpy, real-token mask, float32 rows
    ``(token, layer, d_model)`` (per layer, so the mask runs over contiguous memory)."""
    import zarr

    arr = zarr.open_array(str(path / "bench" / "resid_post"), mode="r")
    block = arr.shards[0]
    layers = list(range(arr.shape[1])) if layers is None else layers
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for start in range(0, arr.shape[0], block):
        stop = min(start + block, arr.shape[0])
        mask = np.arange(arr.shape[2])[None, :] < nt[start:stop, None]
        rows = np.empty((int(mask.sum()), len(layers), arr.shape[3]), dtype=np.float32)
        for j, layer in enumerate(layers):
            rows[:, j] = arr[start:stop, layer][mask]
        n += len(rows)
    return n, time.perf_counter() - t0, time.process_time() - c0


def loader_read(path: Path, **kw) -> tuple[int, float, float]:
    from actstore.torch import ActivationLoader

    loader = ActivationLoader(path, batch_size=4096, **kw)
    t0, c0 = time.perf_counter(), time.process_time()
    n = sum(len(b) for b in loader)
    return n, time.perf_counter() - t0, time.process_time() - c0


def saelens_python() -> str | None:
    env = os.environ.get("ACTSTORE_SAELENS_PYTHON")
    if env:
        return env
    try:
        import sae_lens  # noqa: F401
    except ImportError:
        return None
    return sys.executable


def saelens_read(
    path: Path, tmp: Path, t_max: int, d: int
) -> tuple[int, float, float, float] | None:
    python = saelens_python()
    if python is None:
        return None
    from actstore.store import export_cache

    out = tmp / "hf"
    t0 = time.perf_counter()
    export_cache(path, out, format="hf-datasets", layers=[0], context_size=t_max)
    export_s = time.perf_counter() - t0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [
            python,
            "-c",
            _SAELENS_WORKER,
            str(out / "bench"),
            "blocks.0.hook_resid_post",
            str(t_max),
            str(d),
            str(max(1, 4096 // t_max)),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    n, dt, dc = res.stdout.split()[-3:]
    return int(n), float(dt), float(dc), export_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=1000)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    import torch

    with tempfile.TemporaryDirectory(prefix="actstore-loader-bench-") as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "c.zarr"
        nt = build(path, args.prompts, args.layers, args.tokens, args.d_model)
        real = int(nt.sum())
        rows = []

        def add(what: str, n: int, wall: float, cpu: float, ref: tuple[float, float] | None):
            rel_w = f"{n / wall / ref[0]:.2f}x" if ref else ""
            rel_c = f"{n / cpu / ref[1]:.2f}x" if ref else ""
            rows.append(
                f"| {what} | {n:,} | {wall:.2f} | {n / wall:,.0f} | {rel_w} | {cpu:.2f} | "
                f"{n / cpu:,.0f} | {rel_c} |"
            )
            print(rows[-1], flush=True)
            counts[what] = n

        counts: dict[str, int] = {}
        all_layers = list(range(args.layers))
        readers = {
            f"numpy: zarr + real-token mask + float32, {args.layers} layers": (
                lambda: numpy_read(path, nt, None)
            ),
            f"ActivationLoader, shuffled, {args.layers} layers": (
                lambda: loader_read(path, layers=all_layers)
            ),
            f"ActivationLoader, in order, {args.layers} layers": (
                lambda: loader_read(path, layers=all_layers, shuffle=False)
            ),
            "numpy: zarr + real-token mask + float32, 1 layer": lambda: numpy_read(path, nt, [0]),
            "ActivationLoader, shuffled, 1 layer": lambda: loader_read(path, layer=0),
        }
        # interleaved repeats, best of each: a busy machine slows all readers alike
        runs: dict[str, list[tuple[int, float, float]]] = {k: [] for k in readers}
        for _ in range(args.repeat):
            for what, fn in readers.items():
                runs[what].append(fn())
        ref = None
        for what, res in runs.items():
            n, wall, cpu = res[0][0], min(r[1] for r in res), min(r[2] for r in res)
            if what.startswith("numpy"):
                ref = (n / wall, n / cpu)
                add(what, n, wall, cpu, None)
            else:
                add(what, n, wall, cpu, ref)
        sae = saelens_read(path, tmp, args.tokens, args.d_model)
        if sae is not None:
            n, wall, cpu, export_s = sae
            what = f"SAELens ActivationsStore over `actstore export` (export: {export_s:.1f} s)"
            add(what + ", 1 layer", n, wall, cpu, ref)
            del counts[what + ", 1 layer"]  # it reads whole batches of rows only
        assert set(counts.values()) == {real}, f"a reader missed tokens: {counts} vs {real}"

    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    shape = (
        f"{args.prompts} prompts of {args.tokens // 4}..{args.tokens} tokens ({real:,} real), "
        f"{args.layers} layers, d_model {args.d_model}, bfloat16; best of {args.repeat} "
        "interleaved runs, warm page cache. CPU s is the process's CPU time (all threads): on a "
        "shared machine it varies less than wall time"
    )
    if sae is None:
        shape += "; SAELens not importable here (see docs/export.md), so its row is absent"
    table = "\n".join(
        [
            f"Measured by `python benchmarks/loader.py` on {machine}: {shape}.",
            "",
            "| reader | tokens | wall s | tokens/s | vs numpy | CPU s | tokens/CPU-s | vs numpy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print(table)
    if args.write_docs:
        text = DOC.read_text()
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        DOC.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
