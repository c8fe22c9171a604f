"""Write-path benchmark: every candidate writes the SAME bf16 bytes, in one run, side by side.

Shards of 64 prompts x 7 layers x 32 tokens x 2048 d_model (bfloat16, 58.7 MB), inner chunks of
8 prompts x 1 layer (1 MiB), zstd level 1 + crc32c per chunk, index with crc32c at the end: the
store's format. Rows (MB/s of raw activations; ratio to the first row):

* bare numcodecs zstd-1 encode of the inner chunks, one core, no I/O: the 1.0x reference;
* zarr-python 3.1 sharded write with ``threading.max_workers`` / ``async.concurrency`` 1 and N;
* zarr-python + the ``zarrs`` Rust codec pipeline (float16 view of the same bytes: zarrs does not
  know actstore's bfloat16), when ``zarrs`` is installed;
* TensorStore's ``zarr3`` driver, concurrency limits 1 and N (and without compression), when
  ``tensorstore`` is installed;
* actstore's write path (``PromptSetWriter.write_block``: encode pool over inner chunks, one
  shard file per block), 1 and N threads; this is what ``extract`` uses on a local cache. Its
  blocks are handed over the way extract's writer holds them (stored layer-major, each inner
  chunk one contiguous range); one row hands prompt-major blocks (each chunk gathered first).

Each row is measured ``--repeat`` times, interleaved with the others; the median is printed.
Every written array is read back with zarr-python and compared bit for bit.

    PYTHONPATH=src python benchmarks/write_path.py                 # ~1 minute on 2 cores
    PYTHONPATH=src python benchmarks/write_path.py --write-docs    # and update docs/write-path.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
for p in (HERE.parent / "src", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

CHUNK_PROMPTS = 8


def make_data(n_shards: int, block: int, layers: int, tokens: int, d: int) -> np.ndarray:
    from store_io import synthetic

    return synthetic(n_shards * block, layers, tokens, d)


def zarr_codecs(level: int | None) -> tuple:
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return (Crc32cCodec(),) if level is None else (ZstdCodec(level=level), Crc32cCodec())


def bare_encode(data: np.ndarray) -> Callable[[], None]:
    from numcodecs import Zstd

    z = Zstd(level=1)
    p, n_layers = data.shape[:2]
    chunks = [
        np.ascontiguousarray(data[i : i + CHUNK_PROMPTS, layer]).view(np.uint16)
        for layer in range(n_layers)
        for i in range(0, p, CHUNK_PROMPTS)
    ]

    def run() -> None:
        for c in chunks:
            z.encode(c)

    return run


def zarr_write(
    data: np.ndarray, block: int, workers: int, *, zarrs: bool = False
) -> Callable[[Path], None]:
    import zarr

    def run(where: Path) -> None:
        cfg = {"threading.max_workers": workers, "async.concurrency": max(workers, 1)}
        if zarrs:
            cfg["codec_pipeline.path"] = "zarrs.ZarrsCodecPipeline"
        values = data.view(np.float16) if zarrs else data
        with zarr.config.set(cfg):
            arr = zarr.create_array(
                str(where),
                shape=data.shape,
                dtype=values.dtype,
                chunks=(CHUNK_PROMPTS, 1, *data.shape[2:]),
                shards=(block, *data.shape[1:]),
                compressors=zarr_codecs(1),
                fill_value=0,
                config={"write_empty_chunks": True},
            )
            for s in range(0, data.shape[0], block):
                arr[s : s + block] = values[s : s + block]

    return run


def tensorstore_write(data: np.ndarray, block: int, limit: int, level: int | None) -> Callable:
    import tensorstore as ts

    def run(where: Path) -> None:
        inner = [{"name": "bytes", "configuration": {"endian": "little"}}]
        if level is not None:
            inner.append({"name": "zstd", "configuration": {"level": level, "checksum": False}})
        inner.append({"name": "crc32c"})
        spec = {
            "driver": "zarr3",
            "kvstore": {"driver": "file", "path": str(where)},
            "metadata": {
                "shape": list(data.shape),
                "data_type": "bfloat16",
                "chunk_grid": {
                    "name": "regular",
                    "configuration": {"chunk_shape": [block, *data.shape[1:]]},
                },
                "codecs": [
                    {
                        "name": "sharding_indexed",
                        "configuration": {
                            "chunk_shape": [CHUNK_PROMPTS, 1, *data.shape[2:]],
                            "codecs": inner,
                            "index_codecs": [
                                {"name": "bytes", "configuration": {"endian": "little"}},
                                {"name": "crc32c"},
                            ],
                            "index_location": "end",
                        },
                    }
                ],
                "fill_value": 0,
            },
            "context": {
                "data_copy_concurrency": {"limit": limit},
                "file_io_concurrency": {"limit": limit},
            },
            "create": True,
            "delete_existing": True,
        }
        arr = ts.open(spec).result()
        for s in range(0, data.shape[0], block):
            arr[s : s + block].write(data[s : s + block]).result()

    return run


def bf16_writer(
    where: Path, shape: tuple[int, ...], codec: str, block: int | None = None
) -> object:
    """A writer of prompt set ``s`` for bfloat16 activations of *shape* (prompt, layer, token,
    d_model) in a new cache at *where*, with placeholder per-prompt metadata."""
    from actstore.store import PromptSetMetadata, PromptSetSpec, create_cache

    p, n_layers, t, d = shape
    spec = PromptSetSpec(
        n_prompts=p,
        n_tokens_max=t,
        layers=tuple(range(n_layers)),
        d_model=d,
        dtype="bfloat16",
        block_size=block,
        codec=codec,
    )
    meta = PromptSetMetadata(
        text=["x"] * p,
        n_tokens=np.full(p, t),
        token_id=np.zeros((p, t), dtype=np.int64),
        token_str=np.full((p, t), "a", dtype=object),
    )
    return create_cache(str(where)).prompt_set_writer("s", spec, meta)


def layer_major_blocks(data: np.ndarray, block: int) -> list[np.ndarray]:
    """Every block of *data* as extract's writer holds it: stored ``(layer, prompt, token,
    d_model)``, handed to ``write_block`` as the ``(prompt, layer, token, d_model)`` view (each
    inner chunk is one contiguous range, compressed where it lies)."""
    return [
        np.ascontiguousarray(data[s : s + block].transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
        for s in range(0, data.shape[0], block)
    ]


def actstore_write(
    data: np.ndarray,
    block: int,
    threads: int,
    codec: str,
    inflight: int = 1,
    blocks: list[np.ndarray] | None = None,
) -> Callable:
    """``write_block`` of every block of *data*; *blocks* (default: :func:`layer_major_blocks`,
    what extract hands over) are the arrays handed over, ``[data[s:e] ...]`` for prompt-major."""
    from actstore.store.core import set_write_threads

    if blocks is None:
        blocks = layer_major_blocks(data, block)

    def setup(where: Path) -> object:
        return bf16_writer(where, data.shape, codec, block)

    def run(writer: object) -> None:
        from concurrent.futures import ThreadPoolExecutor

        set_write_threads(threads)

        def one(b: int) -> None:
            writer.write_block(b, {"resid_post": blocks[b]})  # type: ignore[attr-defined]

        # inflight > 1: blocks written at once, as extract's writer does (a store write
        # overlaps the next block's encoding)
        with ThreadPoolExecutor(inflight) as ex:
            list(ex.map(one, range(writer.n_blocks)))  # type: ignore[attr-defined]

    run.setup = setup  # type: ignore[attr-defined]
    return run


def check_readback(path: Path, data: np.ndarray) -> None:
    import zarr

    import actstore  # noqa: F401  (registers bfloat16 with zarr)

    back = zarr.open_array(str(path), mode="r")[...]
    if back.tobytes() != data.tobytes():
        raise SystemExit(f"read-back mismatch at {path}: not bit-exact")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=4, help="shards per measurement (58.7 MB each)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--d-model", type=int, default=2048)
    ap.add_argument("--write-docs", action="store_true", help="update docs/write-path.md")
    args = ap.parse_args(argv)
    block, n_layers, tokens = 64, 7, 32
    data = make_data(args.shards, block, n_layers, tokens, args.d_model)
    n_cpu = len(os.sched_getaffinity(0))
    many = max(2, n_cpu)
    rows: list[tuple[str, Callable]] = [
        ("numcodecs zstd-1 encode, one core, no I/O", bare_encode(data))
    ]
    rows += [
        (
            f"zarr-python {_ver('zarr')} sharded write, {w} worker thread(s)",
            zarr_write(data, block, w),
        )
        for w in (1, many)
    ]
    if _have("zarrs"):
        rows.append(
            (
                f"zarr-python + zarrs {_ver('zarrs')} pipeline (float16 view)",
                zarr_write(data, block, many, zarrs=True),
            )
        )
    if _have("tensorstore"):
        rows += [
            (
                f"TensorStore {_ver('tensorstore')} zarr3, concurrency {n}",
                tensorstore_write(data, block, n, 1),
            )
            for n in (1, many)
        ]
        rows.append(
            (
                f"TensorStore zarr3, no compression, concurrency {many}",
                tensorstore_write(data, block, many, None),
            )
        )
    lm = layer_major_blocks(data, block)  # one copy, shared by the actstore rows
    rows += [
        (
            f"actstore write_block (encode pool), {n} thread(s), 1 block at a time",
            actstore_write(data, block, n, "zstd:1", blocks=lm),
        )
        for n in (1, many)
    ]
    rows += [
        (
            f"actstore write_block, {n} thread(s), 2 blocks in flight (as extract writes)",
            actstore_write(data, block, n, "zstd:1", inflight=2, blocks=lm),
        )
        for n in (1, many)
    ]
    pm = [data[s : s + block] for s in range(0, data.shape[0], block)]
    rows.append(
        (
            f"actstore write_block, {many} threads, 2 blocks in flight, prompt-major blocks "
            "(each chunk gathered)",
            actstore_write(data, block, many, "zstd:1", inflight=2, blocks=pm),
        )
    )
    rows.append(
        (
            f"actstore write_block, codec none, {many} threads, 2 blocks in flight",
            actstore_write(data, block, many, "none", inflight=2, blocks=lm),
        )
    )
    times: dict[str, list[float]] = {name: [] for name, _ in rows}
    cpu: dict[str, list[float]] = {name: [] for name, _ in rows}  # CPU seconds, all threads
    tmp = Path(tempfile.mkdtemp(prefix="actstore-write-path-"))
    try:
        for rep in range(args.repeat):
            for i, (name, fn) in enumerate(rows):
                where = tmp / f"r{rep}_{i}.zarr"
                setup = getattr(fn, "setup", None)
                arg = setup(where) if setup else where
                t0, c0 = time.perf_counter(), time.process_time()
                fn() if i == 0 else fn(arg)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                if i and rep == 0:
                    check_readback(where / "s" / "resid_post" if setup else where, data)
                shutil.rmtree(where, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        from actstore.store.core import set_write_threads

        set_write_threads(None)
    ref = data.nbytes / statistics.median(times[rows[0][0]]) / 1e6
    lines = [
        f"Same bytes for every row: {args.shards} shards of {block} prompts x {n_layers} layers x "
        f"{tokens} tokens x {args.d_model} (bfloat16, {data.nbytes / 1e6:.0f} MB), "
        f"{CHUNK_PROMPTS * tokens * args.d_model * 2 / 2**20:g} MiB inner chunks, "
        f"zstd-1 + crc32c; median of {args.repeat}; every output read back bit-exactly by zarr-python.",
        "",
        "| path | MB/s | vs one core's zstd-1 | CPU s per GB (all threads) |",
        "|---|---:|---:|---:|",
    ]
    for name, _ in rows:
        mbs = data.nbytes / statistics.median(times[name]) / 1e6
        cpu_gb = statistics.median(cpu[name]) / (data.nbytes / 1e9)
        lines.append(f"| {name} | {mbs:,.0f} | {mbs / ref:.2f}x | {cpu_gb:.2f} |")
    from _docs import machine, write_section

    lines += [
        "",
        "CPU s per GB counts every thread of the process, so it does not depend on the load: "
        "with N free cores a path can reach at most N / (CPU s per GB) GB/s.",
        "",
        f"Machine: {machine()}.",
        "",
        "Reproduce: `PYTHONPATH=src python benchmarks/write_path.py --write-docs`",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        print("wrote", write_section("write-path.md", "write-path-table", text))
    return 0


def _have(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def _ver(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    raise SystemExit(main())
