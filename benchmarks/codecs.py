"""Codec trade-off on REAL activations: ratio, write MB/s and read MB/s for each ``--codec``.

The activations are the demo's trained tiny Qwen2 (``actstore demo``'s model, trained here on
first use and then cached; d_model 64, 4 layers) run over arithmetic prompts in bfloat16, all
layers. They are extracted once (``--codec none``), then the same bytes are written through
``PromptSetWriter.write_block`` with each codec (the encode pool, every core) and read back
whole with zarr-python (files warm in the page cache: the CPU cost of decoding). Median of
``--repeat``; ratio = raw bytes / bytes of the shard files.

    PYTHONPATH=src python benchmarks/codecs.py                 # ~1 minute after the model exists
    PYTHONPATH=src python benchmarks/codecs.py --write-docs    # and update docs/write-path.md
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
for p in (HERE.parent / "src", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

CODECS = ("none", "zstd:-3", "zstd:-1", "zstd:1", "zstd:3", "zstd:9")


def real_activations(work: Path, n_prompts: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``(prompt, layer, token, d_model)`` bf16 activations of the demo's trained model."""
    import zarr

    from actstore.extractors import extract
    from actstore.tinymodels import get_demo_model

    model = get_demo_model()
    out = work / "real.zarr"
    extract(
        model=model,
        prompts="arithmetic",
        n_prompts=n_prompts,
        out=out,
        set_name="real",
        layers="all",
        dtype="bfloat16",
        device="cpu",
        codec="none",
        progress=False,
    )
    g = zarr.open_group(str(out), mode="r")["real"]
    return g["resid_post"][...], g["n_tokens"][...], str(model)


def write_with(path: Path, acts: np.ndarray, codec: str) -> tuple[float, int]:
    from write_path import bf16_writer, layer_major_blocks

    writer = bf16_writer(path, acts.shape, codec)
    blocks = layer_major_blocks(acts, writer.block_size)  # as extract's writer hands them over
    t0 = time.perf_counter()
    for b in range(writer.n_blocks):
        writer.write_block(b, {"resid_post": blocks[b]})
    dt = time.perf_counter() - t0
    stored = sum(f.stat().st_size for f in (path / "s" / "resid_post" / "c").rglob("*"))
    return dt, stored


def read_back(path: Path, acts: np.ndarray) -> float:
    import zarr

    arr = zarr.open_array(str(path / "s" / "resid_post"), mode="r")
    t0 = time.perf_counter()
    back = arr[...]
    dt = time.perf_counter() - t0
    if back.tobytes() != acts.tobytes():
        raise SystemExit(f"{path}: read-back differs")
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="actstore-codecs-"))
    try:
        acts, n_tokens, model = real_activations(work, args.prompts)
        rows: dict[str, dict[str, list[float]]] = {
            c: {"w": [], "r": [], "size": []} for c in CODECS
        }
        for rep in range(args.repeat):
            for c in CODECS:
                path = work / f"{rep}-{c.replace(':', '_')}.zarr"
                dt, stored = write_with(path, acts, c)
                rows[c]["w"].append(dt)
                rows[c]["size"].append(stored)
                rows[c]["r"].append(read_back(path, acts))
                shutil.rmtree(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from _docs import machine, write_section

    pad = 1 - float(n_tokens.sum()) / (acts.shape[0] * acts.shape[2])
    mb = acts.nbytes / 1e6
    lines = [
        f"Real activations: the demo's trained tiny Qwen2 ({Path(model).name}), "
        f"{acts.shape[0]} arithmetic prompts x {acts.shape[1]} layers x {acts.shape[2]} tokens "
        f"x {acts.shape[3]} d_model, bfloat16, {mb:.0f} MB ({pad:.0%} of token positions are "
        f"padding, stored as zeros); median of {args.repeat}.",
        "",
        "| codec | ratio | write MB/s | read MB/s |",
        "|---|---:|---:|---:|",
    ]
    for c in CODECS:
        r = rows[c]
        ratio = acts.nbytes / statistics.median(r["size"])
        w = mb / statistics.median(r["w"])
        rd = mb / statistics.median(r["r"])
        lines.append(f"| `{c}` | {ratio:.3f} | {w:,.0f} | {rd:,.0f} |")
    lines += [
        "",
        f"Machine: {machine()}.",
        "",
        "Reproduce: `PYTHONPATH=src python benchmarks/codecs.py --write-docs`",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        print("wrote", write_section("write-path.md", "codec-table", text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
