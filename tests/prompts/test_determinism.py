"""Same seed, same set: in one process, across processes, and against pinned hashes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from actstore.prompts import generate

CASES = [
    ("multiplication", {}),
    ("squaring", {}),
    ("arithmetic", {}),
    ("kinetic_energy", {"cot": "none"}),
    ("kinetic_energy", {"cot": "steps"}),
    ("kinetic_energy", {"cot": "worked"}),
]


@pytest.mark.parametrize(("gen", "opts"), CASES)
def test_same_seed_same_set_other_seed_other_set(gen: str, opts: dict) -> None:
    a = generate(gen, 40, seed=7, **opts)
    b = generate(gen, 40, seed=7, **opts)
    assert a == b
    assert a.content_hash() == b.content_hash()
    c = generate(gen, 40, seed=8, **opts)
    assert c.content_hash() != a.content_hash()


def test_hash_is_the_same_in_a_fresh_process() -> None:
    code = (
        "from actstore.prompts import generate\n"
        "for g, o in " + repr(CASES) + ":\n"
        "    print(generate(g, 40, seed=7, **o).content_hash())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [generate(g, 40, seed=7, **o).content_hash() for g, o in CASES]


# Pinned on the first machine that ran them (x86_64, numpy 2.4). If numpy ever changes the
# PCG64 stream or Generator.integers, or the generator code changes its output, these fail: the
# sets would no longer be the same as the ones earlier caches were extracted from.
@pytest.mark.parametrize(
    ("gen", "opts", "first_text", "expected"),
    [
        (
            "multiplication",
            {},
            "The product of 17 and 6 is 102",
            "fe9d8fb06d14257ee8d0324282c98e3e988f9924c82d5d3f842da649280d4454",
        ),
        (
            "kinetic_energy",
            {"cot": "worked"},
            (
                "A 19 kg ball moves at a constant speed. A second ball moves 4 times as fast, at "
                "44 m/s. First, the speed is the second speed divided by the ratio: v = 44 / 4 = "
                "11 m/s. Then, the square of the speed is v² = 11 × 11 = 121 m²/s². Finally, the "
                "kinetic energy is half of the mass times the square of the speed: KE = 0.5 × 19 "
                "× 121. The kinetic energy is 1149.5 J."
            ),
            "658020953a0421b4663e8cef6907adb0318363aec5b1d885c13f316c0ef24f02",
        ),
    ],
)
def test_pinned_sets(gen: str, opts: dict, first_text: str, expected: str) -> None:
    ps = generate(gen, 20, seed=0, **opts)
    assert ps[0].text == first_text
    assert ps.content_hash() == expected
