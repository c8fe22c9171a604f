"""Benchmark: ridge probes for 7 layers fitted from a cache on disk vs scikit-learn in memory.

For each d_model, writes a bfloat16 cache of N prompts x 7 layers x T tokens x d_model (a linear
signal at the last token), then times, side by side in one run:

* actstore: ``fit_probes(cache, position="last", cv=5)`` in a fresh Python process (cold process:
  imports, opening the cache, reading and decoding the chunks, every layer), wall time of the whole
  process and of the fit call alone; with the shuffled-label control (default) and without it.
* scikit-learn: ``cross_val_score(Ridge(alpha), X, y, cv=KFold(5, shuffle=True))`` plus the refit
  ``Ridge(alpha).fit(X, y)`` per layer, on float32 rows already in memory (like the reference
  script); for the grid, ``cross_val_score`` for every alpha and a refit of the best.

Run:  PYTHONPATH=src python benchmarks/probes.py [--d 1024 5120] [--prompts 500] [--tokens 12]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# --threads N pins BLAS threads for both sides (this process and the actstore child) before numpy
# loads: on a shared, oversubscribed machine threaded BLAS on small matrices mostly spins.
if "--threads" in sys.argv:
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

import numpy as np

LAYERS = (7, 15, 23, 31, 47, 55, 63)
GRID = [float(a) for a in np.logspace(-2, 3, 10)]

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from actstore.analysis import fit_probes
t1 = time.perf_counter()
url, alphas, control = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
p = fit_probes(url, prompt_set="arithmetic", target="value", alphas=alphas, cv=5, seed=0,
               control=control)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "fit_s": t2 - t1,
                  "cv_r2": [m["cv_r2"] for m in p.metrics()]}))
"""


def make_cache(url: Path, n: int, d: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write the cache block by block; return the last-token rows (prompt, layer, d) and y."""
    from actstore.store import PromptSetMetadata, PromptSetSpec, create_cache, numpy_dtype

    rng = np.random.default_rng(seed)
    n_tokens = rng.integers(t - 3, t + 1, size=n).astype(np.int32)
    w = rng.normal(size=(len(LAYERS), d)) / np.sqrt(d)
    y = rng.uniform(4, 361, size=n)
    spec = PromptSetSpec(
        n_prompts=n,
        n_tokens_max=t,
        layers=LAYERS,
        d_model=d,
        dtype="bfloat16",
        fingerprint={"model": "bench"},
    )
    meta = PromptSetMetadata(
        text=[f"p{i}" for i in range(n)],
        n_tokens=n_tokens,
        token_id=np.ones((n, t), np.int32),
        token_str=np.full((n, t), "x", dtype=object),
        labels={"value": y},
    )
    writer = create_cache(str(url)).prompt_set_writer("arithmetic", spec, meta)
    bf16 = numpy_dtype("bfloat16")
    last = np.empty((n, len(LAYERS), d), dtype=np.float32)
    for b in range(writer.n_blocks):
        s0, s1 = writer.block_range(b)
        acts = rng.normal(size=(s1 - s0, len(LAYERS), t, d)).astype(np.float32)
        idx = np.arange(s1 - s0)
        signal = (y[s0:s1, None] - 180) / 100
        acts[idx, :, n_tokens[s0:s1] - 1] += signal[:, :, None] * w[None] * 3
        acts = acts.astype(bf16)
        writer.write_block(b, {"resid_post": acts})
        last[s0:s1] = acts[idx, :, n_tokens[s0:s1] - 1].astype(np.float32)
    return last, y


def run_actstore(url: Path, alphas: list[float], control: str) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(url), json.dumps(alphas), control],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    wall = time.perf_counter() - t0
    return {"wall_s": wall, **json.loads(out.stdout.strip().splitlines()[-1])}


def run_sklearn(last: np.ndarray, y: np.ndarray, alphas: list[float]) -> dict:
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_val_score

    folds = KFold(5, shuffle=True, random_state=0)
    t0 = time.perf_counter()
    r2s = []
    for j in range(last.shape[1]):
        x = last[:, j]
        scores = [
            cross_val_score(Ridge(alpha=a), x, y, cv=folds, scoring="r2").mean() for a in alphas
        ]
        Ridge(alpha=alphas[int(np.argmax(scores))]).fit(x, y)
        r2s.append(max(scores))
    return {"wall_s": time.perf_counter() - t0, "cv_r2": r2s}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--d", type=int, nargs="+", default=[1024, 5120])
    ap.add_argument("--prompts", type=int, default=500)
    ap.add_argument("--tokens", type=int, default=12)
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads for both sides")
    ap.add_argument("--workdir", default=None, help="where to write the caches (default: tmp)")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="actstore-bench-"))
    rows = []
    for d in args.d:
        url = work / f"bench_{d}.zarr"
        shutil.rmtree(url, ignore_errors=True)
        t0 = time.perf_counter()
        last, y = make_cache(url, args.prompts, d, args.tokens)
        size = sum(f.stat().st_size for f in url.rglob("*") if f.is_file())
        print(
            f"d_model {d}: cache {size / 2**20:.0f} MiB on disk, written in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        for label, alphas in (("1 alpha", [1.0]), (f"{len(GRID)} alphas", GRID)):
            sk = run_sklearn(last, y, alphas)
            ours = run_actstore(url, alphas, "shuffle")
            bare = run_actstore(url, alphas, "none")
            assert np.allclose(bare["cv_r2"], sk["cv_r2"], atol=1e-3), (bare, sk)
            rows.append((d, label, sk["wall_s"], bare["wall_s"], bare["fit_s"], ours["wall_s"]))
            print(
                f"  {label}: sklearn {sk['wall_s']:.2f} s | actstore process {bare['wall_s']:.2f}"
                f" s (fit {bare['fit_s']:.2f} s) | with shuffled control {ours['wall_s']:.2f} s",
                flush=True,
            )
        shutil.rmtree(url, ignore_errors=True)
    print()
    print(
        f"{args.prompts} prompts x {len(LAYERS)} layers x {args.tokens} tokens, bfloat16 cache, "
        "5-fold CV; ratio = actstore / sklearn (lower is better)"
    )
    print(
        "| d_model | alphas | sklearn in memory (s) | actstore cold process (s) | ratio "
        "| actstore fit call (s) | ratio | + shuffled control, process (s) | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for d, label, sk, wall, fit, ctrl in rows:
        print(
            f"| {d} | {label} | {sk:.2f} | {wall:.2f} | {wall / sk:.2f}x | {fit:.2f} "
            f"| {fit / sk:.2f}x | {ctrl:.2f} | {ctrl / sk:.2f}x |"
        )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
