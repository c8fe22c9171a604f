"""A small stand-in for the prompt generators (tests only), in the reference study's phrasings."""

from __future__ import annotations

import random

MULT = (
    "{x} times {y} equals {z}",
    "{x} multiplied by {y} is {z}",
    "The product of {x} and {y} is {z}",
    "{x} × {y} = {z}",
    "Multiply {x} by {y}: {z}",
)
SQUARE = (
    "{x} squared equals {z}",
    "The square of {x} is {z}",
    "{x}² = {z}",
    "{x} to the power of 2 is {z}",
    "What is {x} squared? {z}",
)
KE = (
    "A {m} kg cart travels {d} m in {t} s at a constant speed. First, the speed is the distance "
    "divided by the time: v = {d} / {t} = {v} m/s. Then, the square of the speed is "
    "v² = {v} × {v} = {v2} m²/s². Finally, the kinetic energy is half of the mass times the square "
    "of the speed: KE = 0.5 × {m} × {v2}. The kinetic energy is {ke} J."
)


def multiplication(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """``(text, product)`` pairs, operands in [2, 20)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x, y = rng.randrange(2, 20), rng.randrange(2, 20)
        out.append((rng.choice(MULT).format(x=x, y=y, z=x * y), x * y))
    return out


def squaring(n: int, seed: int = 0) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = rng.randrange(2, 20)
        out.append((rng.choice(SQUARE).format(x=x, z=x * x), x * x))
    return out


def kinetic(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        m, v, t = rng.randrange(2, 20), rng.randrange(2, 20), rng.randrange(2, 11)
        ke = m * v * v / 2
        ke_s = str(int(ke)) if ke == int(ke) else str(ke)
        out.append(KE.format(m=m, v=v, t=t, d=v * t, v2=v * v, ke=ke_s))
    return out


def corpus(n: int = 3000, seed: int = 0) -> list[str]:
    """Training text: 60% multiplication, 30% squaring, 10% worked kinetic-energy problems."""
    texts = [t for t, _ in multiplication(int(n * 0.6), seed)]
    texts += [t for t, _ in squaring(int(n * 0.3), seed + 1)]
    texts += kinetic(n - len(texts), seed + 2)
    return texts
