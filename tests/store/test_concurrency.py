"""Two processes creating and writing the same cache at once end with one correct cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

import actstore
from actstore.store import open_cache
from tests._fixtures.store import make_synthetic

ROOT = Path(__file__).resolve().parents[2]

_WORKER = textwrap.dedent(
    """
    import sys, time
    from tests._fixtures.store import make_synthetic
    from actstore.store import create_cache
    from actstore.errors import FingerprintMismatchError
    path, start, model, blocks = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
    syn = make_synthetic(n_prompts=40, block_size=4, fingerprint={"model": model})
    time.sleep(max(0.0, start - time.time()))  # both processes start creating at the same moment
    try:
        writer = create_cache(path).prompt_set_writer("arith", syn.spec, syn.metadata)
    except FingerprintMismatchError as exc:
        print("REFUSED", exc)
        sys.exit(3)
    for b in [int(x) for x in blocks.split(",")]:
        s, e = writer.block_range(b)
        writer.write_block(b, {"resid_post": syn.activations["resid_post"][s:e]})
    print("OK")
    """
)


def _start(path: Path, start: float, model: str, blocks: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(path), str(start), model, blocks],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_two_processes_create_and_write_one_cache(tmp_path) -> None:
    path = tmp_path / "c.zarr"
    start = time.time() + 1.5  # after both interpreters imported actstore
    procs = [_start(path, start, "m", "0,2,4,6,8"), _start(path, start, "m", "1,3,5,7,9")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    cache = open_cache(path)
    assert cache.prompt_sets == ["arith"]
    assert cache.is_complete()
    syn = make_synthetic(n_prompts=40, block_size=4, fingerprint={"model": "m"})
    ds = actstore.open(path, group="arith", decode_bfloat16=False)
    np.testing.assert_array_equal(
        ds["resid_post"].values.view(np.uint16), syn.activations["resid_post"].view(np.uint16)
    )
    assert [str(t) for t in ds["text"].values] == list(syn.metadata.text)


def test_concurrent_creation_with_different_models_refuses_one(tmp_path) -> None:
    path = tmp_path / "c.zarr"
    start = time.time() + 1.5
    procs = [_start(path, start, "model-a", "0"), _start(path, start, "model-b", "1")]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outs
    refused = next(o for p, o in zip(procs, outs) if p.returncode == 3)[0]
    assert "fingerprint.model" in refused
    winner = next(o for p, o in zip(procs, outs) if p.returncode == 0)
    assert winner[0].strip() == "OK"
    assert len(open_cache(path).missing_blocks("arith")) == 9
