"""Requests and seconds to open a cache on S3, with and without consolidated metadata.

Starts a loopback S3 server (moto, on 127.0.0.1) that counts the HTTP requests it answers, uploads
synthetic caches of one and two prompt sets (each with 9 variables, plus a tree of four sets with
four derived variables each), and opens each one

* **before**: with the consolidated metadata removed, as every cache was stored before actstore
  wrote it (``actstore.open`` then reads and checks every ``zarr.json`` file by file);
* **after**: as actstore writes it now (one document for the whole tree).

for ``actstore.open(url)`` (the tree), ``actstore.open(url, group=...)`` and plain
``xr.open_zarr(url, group=...)`` (default arguments, and with ``zarr_format=3``). Seconds are the
median of ``--repeat`` runs against the loopback server: real object storage adds its round-trip
time (tens of ms) to every request, so the request count is the figure that carries over.

Run: ``PYTHONPATH=src:. python benchmarks/remote_open.py [--write-docs]``; ``--write-docs``
rewrites the table in ``docs/remote.md`` between its ``BEGIN remote_open``/``END`` markers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from tests._fixtures.s3 import LoopbackS3  # noqa: E402
from tests._fixtures.store import make_synthetic, write_synthetic  # noqa: E402

import actstore  # noqa: E402

DOC = ROOT / "docs" / "remote.md"


def _tree(tmp: Path, n_sets: int, extra_vars: int) -> Path:
    path = tmp / f"tree{n_sets}_{extra_vars}.zarr"
    for i in range(n_sets):
        syn = make_synthetic(seed=i, n_prompts=64, block_size=16)
        cache, _ = write_synthetic(path, syn, name=f"set{i}")
        for v in range(extra_vars):
            data = np.full((syn.spec.n_prompts, len(syn.spec.layers)), float(v), np.float32)
            cache.write_derived(f"set{i}", f"extra{v}", data, dims=("prompt", "layer"))
    return path


def _strip_consolidated(path: Path) -> None:
    for doc_path in path.rglob("zarr.json"):
        doc = json.loads(doc_path.read_text())
        if doc.pop("consolidated_metadata", None) is not None:
            doc_path.write_text(json.dumps(doc))


def _measure(server: LoopbackS3, fn: Callable[[], object], repeat: int) -> tuple[int, float]:
    counts, times = [], []
    for _ in range(repeat):
        with server.count() as log:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        counts.append(len(log))
    return max(counts), statistics.median(times)


def run(repeat: int) -> list[dict[str, object]]:
    import s3fs

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    server = LoopbackS3()
    server.start()
    so = server.storage_options
    fs = s3fs.S3FileSystem(**so)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            trees = {
                "1 set, 9 variables": (1, 0),
                "2 sets, 9 variables each": (2, 0),
                "4 sets, 13 variables each": (4, 4),
            }
            for label, (n_sets, extra) in trees.items():
                local = _tree(Path(tmp), n_sets, extra)
                fs.put(str(local), f"caches/after/{local.name}", recursive=True)
                _strip_consolidated(local)
                fs.put(str(local), f"caches/before/{local.name}", recursive=True)
                for state in ("before", "after"):
                    url = f"s3://caches/{state}/{local.name}"
                    ways: dict[str, Callable[[], object]] = {
                        "actstore.open(url)": lambda u=url: actstore.open(u, storage_options=so),
                        "actstore.open(url, group=SET)": lambda u=url: actstore.open(
                            u, group="set0", storage_options=so
                        ),
                        "xr.open_zarr(url, group=SET)": lambda u=url: xr.open_zarr(
                            u, group="set0", storage_options=so
                        ),
                        "xr.open_zarr(url, group=SET, zarr_format=3)": lambda u=url: xr.open_zarr(
                            u, group="set0", storage_options=so, zarr_format=3
                        ),
                    }
                    for way, fn in ways.items():
                        n, dt = _measure(server, fn, repeat)
                        rows.append(
                            {"cache": label, "open": way, "state": state, "requests": n, "s": dt}
                        )
    finally:
        server.stop()
    return rows


def table(rows: list[dict[str, object]]) -> str:
    out = [
        "| cache | open | requests before | requests after | seconds before | seconds after |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["cache"], r["open"]) for r in rows}, key=lambda k: (str(k[0]), str(k[1])))
    by = {(r["cache"], r["open"], r["state"]): r for r in rows}
    for cache, way in keys:
        b, a = by[(cache, way, "before")], by[(cache, way, "after")]
        out.append(
            f"| {cache} | `{way}` | {b['requests']} | {a['requests']} | "
            f"{b['s']:.2f} | {a['s']:.2f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median seconds)")
    ap.add_argument("--write-docs", action="store_true", help=f"update the table in {DOC}")
    args = ap.parse_args()
    rows = run(args.repeat)
    text = table(rows)
    import s3fs
    import zarr

    note = (
        f"Measured by `benchmarks/remote_open.py` (median of {args.repeat} runs; requests: the "
        f"most of any run) on {platform.machine()}, Python {platform.python_version()}, "
        f"zarr {zarr.__version__}, xarray {xr.__version__}, s3fs {s3fs.__version__}, against "
        "the loopback S3 server (moto) on the same machine, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end (seconds "
        "from a shared machine are noisy; the request counts are exact)."
    )
    print(text)
    print(note)
    if args.write_docs:
        doc = DOC.read_text()
        start, end = "<!-- BEGIN remote_open -->", "<!-- END remote_open -->"
        i, j = doc.index(start) + len(start), doc.index(end)
        DOC.write_text(f"{doc[:i]}\n{text}\n\n{note}\n{doc[j:]}")


if __name__ == "__main__":
    main()
