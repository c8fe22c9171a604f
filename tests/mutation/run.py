"""Hand-made mutation testing of `store`, `extractors`, `analysis`, `experiment` (a script).

Each mutant in :mod:`tests.mutation.mutants` is one small textual change to one source file (a
flipped comparison, an off-by-one, a dropped check, swapped arguments, a wrong axis, a marker
written too early, ...) and the test files that should see it. The runner copies the repository
to a temporary directory (your checkout is never modified), applies one mutant at a time there,
runs its targeted tests (``-x``, no xdist, not slow, not gpu) with a time limit, and restores the
file. A mutant is *killed* when the tests fail (or time out), *survived* when they pass, *stale*
when its original text no longer occurs exactly once in the file (the source moved on: update
the mutant). Mutants marked ``equivalent`` (no observable behaviour changes) are run but not
counted in the kill rate.

Usage (from the repository root)::

    python tests/mutation/run.py                 # every mutant; writes the table to docs/testing.md
    python tests/mutation/run.py --only ridge-   # mutants whose id starts with ridge-
    python tests/mutation/run.py --list          # list mutants without running
    python tests/mutation/run.py --no-docs --json out.json

Not collected by pytest (no ``test_`` prefix); it runs pytest itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BEGIN = "<!-- BEGIN mutation-results (written by tests/mutation/run.py) -->"
END = "<!-- END mutation-results -->"
IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache", "*.zarr")


def _load_mutants():
    sys.path.insert(0, str(HERE))
    try:
        import mutants  # tests/mutation/mutants.py
    finally:
        sys.path.pop(0)
    return mutants.MUTANTS


def _drop_pyc(path: Path) -> None:
    cache = path.parent / "__pycache__"
    for pyc in cache.glob(f"{path.stem}.*.pyc"):
        pyc.unlink(missing_ok=True)


def _run_one(work: Path, m, timeout: int) -> tuple[str, float, str]:
    target = work / m.file
    original = target.read_text()
    if original.count(m.old) != 1:
        return "stale", 0.0, f"original text found {original.count(m.old)} times"
    tests = [t for t in m.tests if (work / t.split("::")[0]).exists()]
    if not tests:
        return "no-tests", 0.0, "none of its test files exist here"
    cmd = [sys.executable, "-m", "pytest", *tests, "-x", "-q", "-p", "no:xdist"]
    cmd += ["-p", "no:cacheprovider", "-m", "not slow and not gpu"]
    if m.k:
        cmd += ["-k", m.k]
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{work / 'src'}{os.pathsep}{work}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutant's bytecode must never outlive it
    try:
        target.write_text(original.replace(m.old, m.new))
        _drop_pyc(target)
        t0 = time.monotonic()
        try:
            r = subprocess.run(
                cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return "killed", time.monotonic() - t0, f"timeout after {timeout}s"
        dt = time.monotonic() - t0
    finally:
        target.write_text(original)
        _drop_pyc(target)
    lines = r.stdout.strip().splitlines() or [""]
    tail = lines[-1]
    failed = [ln.split()[1] for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    if failed:  # which test saw it
        tail = f"{tail} [{failed[0]}]"
    if r.returncode == 0:
        return "survived", dt, tail
    if r.returncode in (4, 5):  # usage error / nothing collected: the selection is wrong
        return "error", dt, (r.stdout + r.stderr)[-400:]
    return "killed", dt, tail


def _table(results: list[dict]) -> str:
    counted = [r for r in results if not r["equivalent"] and r["status"] in ("killed", "survived")]
    killed = sum(r["status"] == "killed" for r in counted)
    equiv = [r for r in results if r["equivalent"]]
    other = [r for r in results if r["status"] not in ("killed", "survived")]
    lines = [
        f"Kill rate: **{killed}/{len(counted)}** non-equivalent mutants killed"
        + (f" ({100 * killed / len(counted):.0f}%)" if counted else "")
        + f"; {len(equiv)} marked equivalent; {len(other)} stale or not run.",
        "",
        "| package | mutants | killed | survived | equivalent |",
        "|---|---|---|---|---|",
    ]
    for pkg in ("store", "extractors", "analysis", "experiment"):
        rows = [r for r in results if r["package"] == pkg]
        lines.append(
            f"| {pkg} | {len(rows)} "
            f"| {sum(r['status'] == 'killed' and not r['equivalent'] for r in rows)} "
            f"| {sum(r['status'] == 'survived' and not r['equivalent'] for r in rows)} "
            f"| {sum(bool(r['equivalent']) for r in rows)} |"
        )
    survivors = [r for r in counted if r["status"] == "survived"]
    if survivors:
        lines += ["", "Surviving non-equivalent mutants:", ""]
        lines += [f"- `{r['id']}` ({r['file']}): {r['what']}" for r in survivors]
    if equiv:
        lines += ["", "Equivalent mutants (why no test can see them):", ""]
        lines += [f"- `{r['id']}` ({r['status']}): {r['equivalent']}" for r in equiv]
    if other:
        lines += ["", "Stale or not run:", ""]
        lines += [f"- `{r['id']}`: {r['status']} ({r['detail']})" for r in other]
    return "\n".join(lines)


def _write_docs(table: str, docs: Path) -> None:
    text = docs.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{docs} lacks the markers {BEGIN!r} ... {END!r}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    docs.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], help="run mutants whose id starts so")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per mutant (default 300)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/testing.md")
    ap.add_argument(
        "--merge",
        type=Path,
        help="results JSON of an earlier run: rerun only the chosen mutants, keep the rest",
    )
    args = ap.parse_args(argv)
    mutants = _load_mutants()
    ids = [m.id for m in mutants]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise SystemExit(f"duplicate mutant ids: {sorted(dup)}")
    chosen = [m for m in mutants if not args.only or any(m.id.startswith(p) for p in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.id:40s} {m.file}  {m.what}")
        return 0
    results = []
    # SIGTERM unwinds like Ctrl-C: the running pytest is stopped and the copy removed
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="actstore-mutants-") as tmp:
        work = Path(tmp) / "repo"
        shutil.copytree(REPO, work, ignore=IGNORE)
        for i, m in enumerate(chosen, 1):
            status, dt, detail = _run_one(work, m, args.timeout)
            mark = " (equivalent)" if m.equivalent else ""
            print(f"[{i}/{len(chosen)}] {status:8s} {dt:6.1f}s {m.id}{mark}: {detail}", flush=True)
            results.append(
                {
                    "id": m.id,
                    "package": m.file.split("/")[2],
                    "file": m.file,
                    "what": m.what,
                    "status": status,
                    "seconds": round(dt, 1),
                    "equivalent": m.equivalent,
                    "detail": detail,
                }
            )
    if args.merge:
        earlier = {r["id"]: r for r in json.loads(args.merge.read_text())}
        earlier.update({r["id"]: r for r in results})
        results = [earlier[i] for i in ids if i in earlier]
        for r in results:  # the catalogue's current equivalence notes win
            r["equivalent"] = next(m.equivalent for m in mutants if m.id == r["id"])
    table = _table(results)
    print()
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if not args.no_docs and (args.merge or not args.only) and len(results) == len(mutants):
        _write_docs(table, REPO / "docs" / "testing.md")
    counted = [r for r in results if not r["equivalent"]]
    return 1 if any(r["status"] in ("survived", "error", "stale") for r in counted) else 0


if __name__ == "__main__":
    sys.exit(main())
