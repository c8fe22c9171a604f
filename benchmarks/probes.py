"""Benchmark: ridge probes for 7 layers fitted from a cache on disk vs scikit-learn in memory,
for each read path: the full activation array, materialised positions, token-chunked layouts.

For each d_model, writes a bfloat16 cache of N prompts x 7 layers x T tokens x d_model (a linear
signal at the last token), then measures, side by side in one run:

* scikit-learn: ``cross_val_score(Ridge(alpha), X, y, cv=KFold(5, shuffle=True))`` plus the refit
  ``Ridge(alpha).fit(X, y)`` per layer, on float32 rows already in memory (like the reference
  script); for the grid, ``cross_val_score`` for every alpha and a refit of the best.
* actstore: ``fit_probes(cache, position="last", cv=5)`` in a fresh Python process (imports,
  opening the cache, reading and decoding the chunks, every layer), wall time of the whole process
  and of the fit call alone, the best of ``--repeat`` runs; and the bytes the process decoded from
  activation chunks (counted in zarr's bytes codec) over the bytes the fit uses
  (samples x layers x d_model x 2). Read paths:

  - ``full array``: the store's layout, inner chunks (prompts, 1 layer, all tokens, d_model);
  - ``materialised positions``: after ``materialize_positions(cache, set, "last")`` (timed too),
    which ``fit_probes`` then reads automatically: from a local path, with the light reader
    (no zarr, xarray or dask; ``analysis/_light.py``);
  - ``materialised positions, through zarr``: the same rows, ``fit_probes(open_cache(path))``
    (the general path: zarr, xarray, dask, the safety scan at open);
  - ``token-chunked, C prompts``: the same bytes re-chunked (C prompts, 1 layer, 1 token, d_model)
    inside the same shards, read by today's ``fit_probes``.

* scikit-learn in a fresh process too (an extra column beside the comparison above, not instead
  of it): the same ``cross_val_score`` + refit in a new interpreter that imports scikit-learn
  and loads the rows from an ``.npy`` file, wall time of the whole process (best of ``--repeat``),
  so that both sides pay for an interpreter and their imports.

Run:  PYTHONPATH=src python benchmarks/probes.py [--d 1024] [--prompts 500] [--tokens 12]
      [--write-docs]   (rewrites the table in docs/read-path.md)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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
DOC = Path(__file__).resolve().parents[1] / "docs" / "read-path.md"
BEGIN, END = "<!-- BEGIN bench:probes -->", "<!-- END bench:probes -->"

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from actstore.analysis import fit_probes
t1 = time.perf_counter()
decoded = [0]

def _count_zarr(module):
    real = module.BytesCodec._decode_sync
    def counting(self, chunk_bytes, chunk_spec):
        if len(chunk_spec.shape) == 4:  # activation chunks (full array or positions)
            decoded[0] += len(chunk_bytes)
        return real(self, chunk_bytes, chunk_spec)
    module.BytesCodec._decode_sync = counting

class _AfterImport:  # counts zarr's decodes once zarr is imported; the light path never imports it
    def find_spec(self, name, path=None, target=None):
        if name != "zarr.codecs.bytes":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                run = spec.loader.exec_module
                def exec_module(module):
                    run(module)
                    _count_zarr(module)
                spec.loader.exec_module = exec_module
                return spec

sys.meta_path.insert(0, _AfterImport())
import actstore.store.format._shardread as light  # the light reader (already loaded by a fit)
_light_decode = light._Chunk.decode
def _counting_light(self, data, key):
    out = _light_decode(self, data, key)
    if out.ndim == 4:
        decoded[0] += out.nbytes
    return out
light._Chunk.decode = _counting_light
url, alphas, control, how = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
if how == "general":  # a Cache object: the general path (zarr, xarray, dask), never the light one
    from actstore.store import open_cache
    url = open_cache(url)
p = fit_probes(url, prompt_set="arithmetic", target="value", alphas=alphas, cv=5, seed=0,
               control=control)
t2 = time.perf_counter()
heavy = [m for m in ("zarr", "xarray", "dask", "pandas") if m in sys.modules]
print(json.dumps({"import_s": t1 - t0, "fit_s": t2 - t1, "decoded": decoded[0],
                  "n_samples": p.lineage["n_samples"], "heavy": heavy,
                  "cv_r2": [m["cv_r2"] for m in p.metrics()]}))
"""

# scikit-learn in a fresh process: interpreter + imports + np.load of the rows + the same fit.
_SK_CHILD = """
import json, sys
import numpy as np
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_score
last, y = np.load(sys.argv[1]), np.load(sys.argv[2])
alphas = json.loads(sys.argv[3])
folds = KFold(5, shuffle=True, random_state=0)
r2s = []
for j in range(last.shape[1]):
    x = last[:, j]
    scores = [cross_val_score(Ridge(alpha=a), x, y, cv=folds, scoring="r2").mean() for a in alphas]
    Ridge(alpha=alphas[int(np.argmax(scores))]).fit(x, y)
    r2s.append(max(scores))
print(json.dumps({"cv_r2": r2s}))
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


def rechunk_by_token(src: Path, dst: Path, prompts_per_chunk: int) -> None:
    """Copy the cache, then rewrite ``resid_post`` with inner chunks (C, 1, 1, d_model)."""
    import zarr

    shutil.copytree(src, dst)
    group = zarr.open_group(str(dst / "arithmetic"), mode="r+")
    old = group["resid_post"]
    data, attrs = old[...], dict(old.attrs)
    shards = old.shards
    # the inner chunk must tile the shard: the largest divisor of its prompts up to C
    c = max(k for k in range(1, min(prompts_per_chunk, shards[0]) + 1) if shards[0] % k == 0)
    new = group.create_array(
        "resid_post",
        shape=old.shape,
        dtype=old.dtype,
        chunks=(c, 1, 1, old.shape[3]),
        shards=shards,
        compressors=old.compressors,
        fill_value=old.fill_value,
        dimension_names=old.metadata.dimension_names,
        attributes=attrs,
        overwrite=True,
    )
    new[...] = data


def _child_env() -> dict[str, str]:
    """The children's environment: this one, but writing bytecode caches (an installed package
    has them; without them every run of a source checkout compiles actstore again, ~30 ms)."""
    env = os.environ.copy()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_actstore(
    url: Path, alphas: list[float], control: str, repeat: int, how: str = "path"
) -> dict:
    """Best of *repeat* fresh processes; *how*: ``path`` (fit_probes(URL), the light path where
    it applies) or ``general`` (fit_probes(open_cache(URL)): zarr, xarray, dask)."""
    best: dict = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(url), json.dumps(alphas), control, how],
            capture_output=True,
            text=True,
            check=True,
            env=_child_env(),
        )
        wall = time.perf_counter() - t0
        res = {"wall_s": wall, **json.loads(out.stdout.strip().splitlines()[-1])}
        if not best or res["wall_s"] < best["wall_s"]:
            best = res
    return best


def run_sklearn(last: np.ndarray, y: np.ndarray, alphas: list[float], repeat: int) -> dict:
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_val_score

    folds = KFold(5, shuffle=True, random_state=0)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        r2s = []
        for j in range(last.shape[1]):
            x = last[:, j]
            scores = [
                cross_val_score(Ridge(alpha=a), x, y, cv=folds, scoring="r2").mean() for a in alphas
            ]
            Ridge(alpha=alphas[int(np.argmax(scores))]).fit(x, y)
            r2s.append(max(scores))
        best = min(best, time.perf_counter() - t0)
    return {"wall_s": best, "cv_r2": r2s}


def run_sklearn_process(
    work: Path, last: np.ndarray, y: np.ndarray, alphas: list[float], repeat: int
) -> dict:
    """scikit-learn's fit in a fresh interpreter (rows from .npy files): best wall time."""
    xs, ys = work / "sk_rows.npy", work / "sk_y.npy"
    np.save(xs, last)
    np.save(ys, y)
    best: dict = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _SK_CHILD, str(xs), str(ys), json.dumps(alphas)],
            capture_output=True,
            text=True,
            check=True,
            env=_child_env(),
        )
        res = {"wall_s": time.perf_counter() - t0, **json.loads(out.stdout.strip())}
        if not best or res["wall_s"] < best["wall_s"]:
            best = res
    xs.unlink()
    ys.unlink()
    return best


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average {load:.1f} at the end of the run"
    )


def measure_d(args: argparse.Namespace, work: Path, d: int, alphas: list[float]) -> dict:
    from actstore.store import materialize_positions, open_cache

    url = work / f"bench_{d}.zarr"
    shutil.rmtree(url, ignore_errors=True)
    t0 = time.perf_counter()
    last, y = make_cache(url, args.prompts, d, args.tokens)
    write_s = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in url.rglob("*") if f.is_file())
    print(f"d_model {d}: cache {size / 2**20:.0f} MiB, written in {write_s:.1f} s", flush=True)
    sk = run_sklearn(last, y, alphas, args.repeat)
    sk_proc = run_sklearn_process(work, last, y, alphas, args.repeat)
    if not np.allclose(sk_proc["cv_r2"], sk["cv_r2"], atol=1e-6):
        raise SystemExit(f"scikit-learn in a fresh process differs: {sk_proc} vs {sk}")
    paths: list[tuple[str, Path]] = []
    for c in args.token_chunks:
        tok = work / f"bench_{d}_tok{c}.zarr"
        shutil.rmtree(tok, ignore_errors=True)
        rechunk_by_token(url, tok, c)
        paths.append((f"token-chunked, {c} prompt{'s' if c > 1 else ''} per chunk", tok))
    rows = []

    def one(label: str, where: Path, extra: str = "", how: str = "path") -> None:
        bare = run_actstore(where, alphas, "none", args.repeat, how)
        ctrl = run_actstore(where, alphas, "shuffle", args.repeat, how)
        if not np.allclose(bare["cv_r2"], sk["cv_r2"], atol=1e-3):
            raise SystemExit(f"{label}: CV R2 differs from scikit-learn: {bare} vs {sk}")
        used = bare["n_samples"] * len(LAYERS) * d * 2
        rows.append(
            {
                "d": d,
                "path": label,
                "sk": sk["wall_s"],
                "sk_proc": sk_proc["wall_s"],
                "wall": bare["wall_s"],
                "fit": bare["fit_s"],
                "import": bare["import_s"],
                "ctrl": ctrl["wall_s"],
                "decoded": bare["decoded"] / used,
                "heavy": bare["heavy"],
                "extra": extra,
            }
        )
        r = rows[-1]
        print(
            f"  {label}: process {r['wall']:.2f} s ({r['wall'] / r['sk']:.2f}x sklearn "
            f"{r['sk']:.2f} s; {r['wall'] / r['sk_proc']:.2f}x sklearn in a fresh process "
            f"{r['sk_proc']:.2f} s), fit call {r['fit']:.2f} s, decoded/used {r['decoded']:.2f}x"
            f"; imported {', '.join(r['heavy']) or 'none of zarr, xarray, dask, pandas'}{extra}",
            flush=True,
        )

    one("full array (today's layout)", url)
    for label, where in paths:
        one(label, where)
    t0 = time.perf_counter()
    materialize_positions(open_cache(str(url), mode="r+"), "arithmetic", "last")
    mat_s = time.perf_counter() - t0
    one("materialised positions (last), through zarr", url, how="general")
    one("materialised positions (last)", url, f"; materialising took {mat_s:.2f} s")
    for _, where in paths:
        shutil.rmtree(where, ignore_errors=True)
    shutil.rmtree(url, ignore_errors=True)
    return {"rows": rows, "write_s": write_s, "mat_s": mat_s, "size": size}


def render(args: argparse.Namespace, results: list[dict], label: str) -> str:
    cmd = "PYTHONPATH=src python benchmarks/probes.py --write-docs" + "".join(
        f" {a}" for a in sys.argv[1:] if a != "--write-docs"
    )
    lines = [
        f"Machine: {machine()}. Command: `{cmd}`.",
        f"{args.prompts} prompts x {len(LAYERS)} layers x {args.tokens} tokens, bfloat16, "
        f"position `last`, 5-fold CV, {label}; best of {args.repeat} runs per cell. Ratios: "
        "actstore / scikit-learn on rows in memory (lower is better), and bytes decoded from "
        "activation chunks / bytes the fit uses. The last two columns compare the actstore "
        "process with scikit-learn also in a fresh process (interpreter, `import sklearn`, "
        "`np.load` of the rows, the same fit). `imported`: which of zarr, xarray, dask and "
        "pandas the actstore process loaded.",
        "",
        "| d_model | read path | decoded / used | actstore process (s) | vs sklearn "
        "| fit call (s) | vs sklearn | + shuffled control (s) | vs sklearn | sklearn (s) "
        "| sklearn process (s) | process vs sklearn process | imported |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for res in results:
        for r in res["rows"]:
            lines.append(
                f"| {r['d']} | {r['path']} | {r['decoded']:.2f}x | {r['wall']:.2f} "
                f"| {r['wall'] / r['sk']:.2f}x | {r['fit']:.2f} | {r['fit'] / r['sk']:.2f}x "
                f"| {r['ctrl']:.2f} | {r['ctrl'] / r['sk']:.2f}x | {r['sk']:.2f} "
                f"| {r['sk_proc']:.2f} | {r['wall'] / r['sk_proc']:.2f}x "
                f"| {', '.join(r['heavy']) or 'none of zarr, xarray, dask, pandas'} |"
            )
    lines.append("")
    for res in results:
        d = res["rows"][0]["d"]
        imp = min(r["import"] for r in res["rows"])
        lines.append(
            f"d_model {d}: cache {res['size'] / 2**20:.0f} MiB written in {res['write_s']:.1f} s; "
            f"materialising `last` took {res['mat_s']:.2f} s; importing actstore.analysis in "
            f"the fresh process took {imp:.2f} s (best run)."
        )
    return "\n".join(lines)


def write_doc(text: str, threads: int | None, doc: Path = DOC) -> None:
    """Replace the table of this BLAS thread setting (one table per setting) in *doc*."""
    tag = "" if threads is None else f":threads{threads}"
    begin, end = BEGIN.replace("probes", "probes" + tag), END.replace("probes", "probes" + tag)
    body = doc.read_text()
    block = f"{begin}\n{text}\n{end}"
    if begin in body:
        body = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, body, flags=re.S)
    else:
        body = body.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(body)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--d", type=int, nargs="+", default=[1024])
    ap.add_argument("--prompts", type=int, default=500)
    ap.add_argument("--tokens", type=int, default=12)
    ap.add_argument("--grid", action="store_true", help=f"search {len(GRID)} alphas, not 1")
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell (the best is kept)")
    ap.add_argument(
        "--token-chunks",
        type=int,
        nargs="*",
        default=[1, 64],
        help="prompts per inner chunk of the token-chunked layouts to measure",
    )
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads for both sides")
    ap.add_argument("--workdir", default=None, help="where to write the caches (default: tmp)")
    ap.add_argument("--write-docs", action="store_true", help=f"rewrite the table in {DOC.name}")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="actstore-bench-"))
    alphas = GRID if args.grid else [1.0]
    label = f"{len(GRID)} alphas" if args.grid else "1 alpha"
    results = [measure_d(args, work, d, alphas) for d in args.d]
    text = render(args, results, label)
    print()
    print(text)
    if args.write_docs:
        write_doc(text, args.threads)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
