"""Write ``tests/data/cache_v0_1.zip``: a small cache as release 0.1 wrote it (run once, on 0.1).

Kept so that the format stays readable: ``tests/store/test_old_caches.py`` opens, verifies, reads,
fits on and resumes this cache with today's code. It was written by commit 3aa66b6 (before the
``codec`` spec field, the p-value and alpha-edge probe variables and materialised positions)::

    git worktree add --detach /tmp/v01 3aa66b6
    cd /tmp/v01 && PYTHONPATH=src:. python <this file> OUT_DIR

Contents: set ``arith`` (bfloat16, complete, 23 prompts), set ``f32`` (float32, complete), set
``partial`` (bfloat16, 2 of 5 blocks written: a resume target), saved probes ``probes/p`` (ridge,
``value`` at ``last``) and the derived ``pred_p`` written by ``detect``; plus ``expected.npz``
with the arrays written, to compare bit for bit (saved as ``cache_v0_1_expected.npz``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from tests._fixtures.store import make_synthetic, write_synthetic


def main(out: str) -> None:
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    url = root / "cache.zarr"
    syn = make_synthetic(seed=0)
    write_synthetic(url, syn, name="arith")
    f32 = make_synthetic(seed=1, dtype="float32", n_prompts=12, block_size=4)
    write_synthetic(url, f32, name="f32")
    part = make_synthetic(seed=2, n_prompts=24, block_size=5)
    write_synthetic(url, part, name="partial", blocks=[0, 3])
    from actstore import analysis

    probes = analysis.fit_probes(str(url), prompt_set="arith", target="value", position="last")
    analysis.save_probes(probes, str(url), name="p")
    analysis.detect(str(url), probes, prompt_set="arith", target="value", name="pred_p")
    np.savez(
        root / "expected.npz",
        arith=syn.activations["resid_post"].view(np.uint16),
        f32=f32.activations["resid_post"],
        partial=part.activations["resid_post"].view(np.uint16),
    )
    shutil.make_archive(str(root / "cache_v0_1"), "zip", root, "cache.zarr")


if __name__ == "__main__":
    main(sys.argv[1])
