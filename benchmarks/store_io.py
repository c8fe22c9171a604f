"""Store I/O benchmark: actstore's Zarr cache against numpy.save / np.load, side by side in one run.

Synthetic bfloat16 activations of a realistic shape (default 500 prompts x 7 layers x 32 tokens x
1024 d_model, 229 MB) are written through ``PromptSetWriter.write_block`` and through one
``numpy.save``; then read back as one layer of all prompts (probe fitting) and one prompt of all
layers (detection). Warm reads find the files in the OS page cache (as right after writing): they compare the formats'
CPU cost. COLD rows first evict both formats' files from the page cache (posix_fadvise DONTNEED),
so they include the disk.

    PYTHONPATH=src python benchmarks/store_io.py            # default, about a minute
    PYTHONPATH=src python benchmarks/store_io.py --prompts 200 --codecs
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def synthetic(p: int, n_layers: int, t: int, d: int, seed: int = 0) -> np.ndarray:
    """Gaussian activations with per-dimension scales and a few large 'massive activation' dims,
    growing with depth like a residual stream; cast to bfloat16."""
    from actstore.store import BFLOAT16

    rng = np.random.default_rng(seed)
    scale = rng.lognormal(0.0, 0.5, d).astype(np.float32)
    scale[rng.choice(d, 4, replace=False)] *= 50.0
    out = np.empty((p, n_layers, t, d), dtype=BFLOAT16)
    for layer in range(n_layers):
        x = rng.standard_normal((p, t, d), dtype=np.float32) * scale * (1.0 + layer)
        out[:, layer] = x.astype(BFLOAT16)
    return out


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) if repeat < 3 else statistics.median(times)


def write_zarr(path: Path, acts: np.ndarray, compressors: tuple | None = None) -> None:
    from actstore.store import PromptSetMetadata, PromptSetSpec, create_cache

    p, n_layers, t, d = acts.shape
    spec = PromptSetSpec(
        n_prompts=p,
        n_tokens_max=t,
        layers=tuple(range(n_layers)),
        d_model=d,
        dtype="bfloat16",
        fingerprint={"model": "synthetic"},
    )
    meta = PromptSetMetadata(
        text=[f"p{i}" for i in range(p)],
        n_tokens=np.full(p, t),
        token_id=np.zeros((p, t), int),
        token_str=np.full((p, t), "x", dtype=object),
    )
    cache = create_cache(path)
    if compressors is not None:
        import actstore.store.core._writer as w

        orig = w.codec_compressors
        w.codec_compressors = lambda codec: compressors
    try:
        writer = cache.prompt_set_writer("bench", spec, meta)
    finally:
        if compressors is not None:
            w.codec_compressors = orig
    for b in range(writer.n_blocks):
        s, e = writer.block_range(b)
        writer.write_block(b, {"resid_post": acts[s:e]})


def drop_cache(*paths: Path) -> None:
    """Evict the files from the OS page cache (no root needed), so the next read hits the disk."""
    for root in paths:
        for f in [root] if root.is_file() else [x for x in root.rglob("*") if x.is_file()]:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def cold(fn: Callable[[], object], paths: tuple[Path, ...], repeat: int) -> float:
    def run() -> None:
        drop_cache(*paths)
        fn()

    # the eviction itself is timed too, but it is the same cost for both formats and small
    return best(run, repeat)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--prompts", type=int, default=500)
    ap.add_argument("--layers", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--d-model", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--codecs", action="store_true", help="also compare compression codecs")
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = ap.parse_args()

    import zarr

    import actstore

    acts = synthetic(args.prompts, args.layers, args.tokens, args.d_model)
    mb = acts.nbytes / 1e6
    tmp = Path(tempfile.mkdtemp(prefix="actstore-bench-", dir=args.dir))
    zpath, npath = tmp / "c.zarr", tmp / "a.npy"
    layer, prompt = args.layers // 2, args.prompts // 2
    try:

        def zwrite() -> None:
            shutil.rmtree(zpath, ignore_errors=True)
            write_zarr(zpath, acts)

        def nwrite() -> None:
            np.save(npath, acts.view(np.uint16))  # .npy cannot hold bfloat16 without pickle

        t_zw, t_nw = best(zwrite, args.repeat), best(nwrite, args.repeat)
        arr = zarr.open_group(zpath, mode="r")["bench/resid_post"]
        ds = actstore.open(zpath, group="bench")  # bfloat16 decoded to float32 (the default)
        raw = actstore.open(zpath, group="bench", decode_bfloat16=False)
        rows = [("write (whole set)", mb, t_zw, t_nw)]

        one_layer_mb = mb / args.layers
        t_zl = best(lambda: arr[:, layer], args.repeat)
        t_xl = best(lambda: ds["resid_post"].isel(layer=layer).values, args.repeat)
        t_rl = best(lambda: raw["resid_post"].isel(layer=layer).values, args.repeat)
        t_nl = best(lambda: np.load(npath, mmap_mode="r")[:, layer].copy(), args.repeat)
        t_nlf = best(lambda: np.load(npath)[:, layer].copy(), args.repeat)
        one_prompt_mb = mb / args.prompts
        t_zp = best(lambda: arr[prompt], args.repeat * 3)
        t_xp = best(lambda: ds["resid_post"].isel(prompt=prompt).values, args.repeat * 3)
        t_np = best(lambda: np.load(npath, mmap_mode="r")[prompt].copy(), args.repeat * 3)
        t_zlc = cold(lambda: arr[:, layer], (zpath,), args.repeat)
        t_nlc = cold(lambda: np.load(npath, mmap_mode="r")[:, layer].copy(), (npath,), args.repeat)
        t_zpc = cold(lambda: arr[prompt], (zpath,), args.repeat)
        t_npc = cold(lambda: np.load(npath, mmap_mode="r")[prompt].copy(), (npath,), args.repeat)
        rows += [
            ("read one layer, all prompts (zarr)", one_layer_mb, t_zl, t_nl),
            ("read one layer, all prompts (actstore.open + dask)", one_layer_mb, t_xl, t_nl),
            ("read one layer, all prompts (same, decode_bfloat16=False)", one_layer_mb, t_rl, t_nl),
            ("read one layer vs np.load of the whole file", one_layer_mb, t_zl, t_nlf),
            ("read one prompt, all layers (zarr)", one_prompt_mb, t_zp, t_np),
            ("read one prompt, all layers (actstore.open + dask)", one_prompt_mb, t_xp, t_np),
            ("COLD read one layer, all prompts (zarr vs mmap)", one_layer_mb, t_zlc, t_nlc),
            ("COLD read one prompt, all layers (zarr vs mmap)", one_prompt_mb, t_zpc, t_npc),
        ]

        def codec_only() -> None:
            # the CPU floor of any zstd store: compress + checksum 1 MiB chunks, no zarr, no I/O
            import crc32c
            import numcodecs

            z = numcodecs.Zstd(level=1)
            step = max(1, 2**20 // (args.tokens * args.d_model * 2))
            for i in range(0, args.prompts, step):
                for lay in range(args.layers):
                    crc32c.crc32c(
                        z.encode(np.ascontiguousarray(acts[i : i + step, lay]).view(np.uint8))
                    )

        t_codec = best(codec_only, 1)
        disk = dir_bytes(zpath / "bench" / "resid_post")
        print(
            f"machine: {platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"data: {args.prompts} prompts x {args.layers} layers x {args.tokens} tokens x "
            f"{args.d_model} d_model, bfloat16 = {mb:.0f} MB"
        )
        print(
            f"zarr on disk: {disk / 1e6:.1f} MB, compression ratio {acts.nbytes / disk:.3f}x, "
            f"{sum(1 for f in (zpath / 'bench' / 'resid_post').rglob('*') if f.is_file()) - 1} "
            "shard files"
        )
        print()
        print("| operation | MB | actstore MB/s | numpy MB/s | ratio (actstore/numpy) |")
        print("|---|---:|---:|---:|---:|")
        for name, size, tz, tn in rows:
            print(f"| {name} | {size:.1f} | {size / tz:.0f} | {size / tn:.0f} | {tn / tz:.2f}x |")
        print(
            f"| (zstd-1 + crc32c encode only, one thread, no zarr, no I/O: the CPU floor) | {mb:.1f} "
            f"| {mb / t_codec:.0f} | {mb / t_nw:.0f} | {t_nw / t_codec:.2f}x |"
        )
        if args.codecs:
            from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

            print()
            print("| activation codec | compression ratio | write MB/s |")
            print("|---|---:|---:|")
            for label, comp in [
                ("zstd level 1 + crc32c (default)", None),
                ("zstd level 3", (ZstdCodec(level=3), Crc32cCodec())),
                (
                    "blosc zstd clevel 1 + byte shuffle",
                    (
                        BloscCodec(cname="zstd", clevel=1, shuffle="shuffle", typesize=2),
                        Crc32cCodec(),
                    ),
                ),
                (
                    "blosc zstd clevel 5 + byte shuffle",
                    (
                        BloscCodec(cname="zstd", clevel=5, shuffle="shuffle", typesize=2),
                        Crc32cCodec(),
                    ),
                ),
                ("none (crc32c only)", (Crc32cCodec(),)),
            ]:
                path = tmp / f"codec-{len(label)}.zarr"
                t0 = time.perf_counter()
                write_zarr(path, acts, comp)
                dt = time.perf_counter() - t0
                size = dir_bytes(path / "bench" / "resid_post")
                print(f"| {label} | {acts.nbytes / size:.3f}x | {mb / dt:.0f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
