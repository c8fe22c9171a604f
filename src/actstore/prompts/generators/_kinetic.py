"""Kinetic-energy problems whose speed is implied, not stated (the reference study's test set).

The reference script called ``prompt_functions.gen_implicit_velocity``, which was never published;
this rebuilds that family. Each prompt gives a mass ``m`` in kg and, in one of five formats,
quantities from which the speed ``v`` follows:

``distance_time``  a distance covered in a time at constant speed, ``v = d / t``
``drop_height``    a drop from rest from height ``h`` with ``g = 10 m/s²``, ``v² = 2 g h``
``acceleration``   uniform acceleration ``a`` from rest for a time ``t``, ``v = a t``
``momentum``       the momentum ``p`` and the mass, ``v = p / m``
``ratio``          a second object's speed and a stated ratio, ``v = k u`` or ``v = u / k``

``v`` is an integer drawn uniformly from [2, 20), so ``v_squared`` lies in [4, 361], inside the
range of the arithmetic probes' training values; every given number is written exactly (the drop
height ``v² / 20`` has at most two decimals). ``m`` is an integer in [2, 20) and
``ke = m v² / 2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from actstore._validate import split_items
from actstore.errors import InvalidArgumentError
from actstore.prompts._prompt import Prompt
from actstore.prompts._registry import register_generator
from actstore.prompts._render import format_number, render

__all__ = ["COT_MODES", "KE_FORMATS", "V_RANGE", "kinetic_energy_prompt"]

COT_MODES = ("none", "steps", "worked")
V_RANGE = (2, 20)  # v in [2, 20): v² in [4, 361]
M_RANGE = (2, 20)
G = 10

# Per format: problem statement, objects, then for each cot mode the step(s) that find v (and, in
# worked mode, write it). Fields in {} become spans, except {article} and {obj}.
_PROBLEM = {
    "distance_time": "{article} {m} kg {obj} travels {distance} m in {time} s at a constant speed.",
    "drop_height": (
        "{article} {m} kg {obj} is dropped from rest from a height of {height} m. "
        "Take g = {g} m/s² and ignore air resistance."
    ),
    "acceleration": (
        "{article} {m} kg {obj} starts from rest and speeds up with a constant acceleration of "
        "{acceleration} m/s² for {time} s."
    ),
    "momentum": "A {obj} with a mass of {m} kg has a momentum of {momentum} kg·m/s.",
    "ratio_faster": (
        "{article} {m} kg {obj} moves {ratio} times as fast as a second {obj} that moves at "
        "{speed_b} m/s."
    ),
    "ratio_slower": (
        "{article} {m} kg {obj} moves at a constant speed. A second {obj} moves {ratio} times as "
        "fast, at {speed_b} m/s."
    ),
}
_OBJECTS = {
    "distance_time": ("cart", "cyclist", "runner", "toy car"),
    "drop_height": ("ball", "stone", "book", "melon"),
    "acceleration": ("sled", "car", "skateboard", "trolley"),
    "momentum": ("puck", "ball", "cart", "box"),
    "ratio": ("ball", "cart", "block", "drone"),
}
_FIND_V_STEPS = {
    "distance_time": "First, find the speed by dividing the distance by the time.",
    "drop_height": (
        "First, use energy conservation to find the square of the speed at the ground from the "
        "height and g."
    ),
    "acceleration": "First, find the final speed by multiplying the acceleration by the time.",
    "momentum": "First, find the speed by dividing the momentum by the mass.",
    "ratio_faster": "First, find the speed by multiplying the second object's speed by the ratio.",
    "ratio_slower": "First, find the speed by dividing the second object's speed by the ratio.",
}
_FIND_V_WORKED = {
    "distance_time": (
        "First, the speed is the distance divided by the time: v = {distance} / {time} = {v} m/s."
    ),
    "drop_height": (
        "First, energy conservation gives the square of the speed at the ground: "
        "v² = 2 × {g} × {height} = {v_squared} m²/s², so v = {v} m/s."
    ),
    "acceleration": (
        "First, the final speed is the acceleration times the time: "
        "v = {acceleration} × {time} = {v} m/s."
    ),
    "momentum": (
        "First, the speed is the momentum divided by the mass: v = {momentum} / {m} = {v} m/s."
    ),
    "ratio_faster": (
        "First, the speed is the ratio times the second speed: v = {ratio} × {speed_b} = {v} m/s."
    ),
    "ratio_slower": (
        "First, the speed is the second speed divided by the ratio: "
        "v = {speed_b} / {ratio} = {v} m/s."
    ),
}
_SQUARE_STEPS = "Then, square the speed."
_SQUARE_WORKED = "Then, the square of the speed is v² = {v} × {v} = {v_squared} m²/s²."
_KE_STEPS = "Finally, take half of the mass times the square of the speed."
_KE_WORKED = (
    "Finally, the kinetic energy is half of the mass times the square of the speed: "
    "KE = 0.5 × {m} × {v_squared}."
)
_ENDING = "The kinetic energy is"

KE_FORMATS = ("distance_time", "drop_height", "acceleration", "momentum", "ratio")
# Times for the acceleration format whose quotient v / t always has a finite decimal form.
_DECIMAL_TIMES = (2, 4, 5, 8, 10)


def _article(m: int) -> str:
    return "An" if str(m).startswith("8") or m in (11, 18) else "A"


def _given(fmt: str, v: int, rng: np.random.Generator) -> tuple[str, dict[str, str]]:
    """The format variant and the written given quantities (besides m) that imply ``v``."""
    if fmt == "distance_time":
        t = int(rng.integers(2, 11))
        return fmt, {"distance": str(v * t), "time": str(t)}
    if fmt == "drop_height":
        # v² = 2 g h with g = 10, so h = v² / 20: at most two decimals, written exactly.
        return fmt, {"height": format_number(Fraction(v * v, 2 * G)), "g": str(G)}
    if fmt == "acceleration":
        times = sorted(set(_DECIMAL_TIMES) | {t for t in range(2, 11) if v % t == 0})
        t = times[int(rng.integers(len(times)))]
        return fmt, {"acceleration": format_number(Fraction(v, t)), "time": str(t)}
    if fmt == "momentum":
        return fmt, {}  # needs m: filled in by the caller
    if fmt == "ratio":
        faster = [k for k in (2, 3, 4, 5) if v % k == 0]
        if faster and rng.integers(2) == 0:
            k = faster[int(rng.integers(len(faster)))]
            return "ratio_faster", {"ratio": str(k), "speed_b": str(v // k)}
        k = int(rng.integers(2, 5))
        return "ratio_slower", {"ratio": str(k), "speed_b": str(v * k)}
    raise AssertionError(fmt)  # unreachable: formats are checked before drawing


def _check_formats(formats: Sequence[str] | str | None) -> tuple[str, ...]:
    if formats is None:
        return KE_FORMATS
    if isinstance(formats, str):
        formats = split_items(formats, "formats", "distance_time,momentum")
    formats = tuple(formats)
    bad = [f for f in formats if f not in KE_FORMATS]
    if bad or not formats:
        raise InvalidArgumentError(
            f"expected formats from {', '.join(KE_FORMATS)}, "
            f"got {', '.join(map(repr, bad)) or 'none'}"
        )
    return formats


def kinetic_energy_prompt(
    fmt: str, m: int, v: int, rng: np.random.Generator, *, cot: str = "none"
) -> Prompt:
    """One kinetic-energy prompt of format ``fmt`` with mass ``m`` and implied speed ``v``."""
    variant, values = _given(fmt, v, rng)
    objects = _OBJECTS[fmt]
    values.update(
        m=str(m),
        article=_article(m),
        obj=objects[int(rng.integers(len(objects)))],
        v=str(v),
        v_squared=str(v * v),
    )
    if fmt == "momentum":
        values["momentum"] = str(m * v)
    ke = Fraction(m * v * v, 2)
    values["ke"] = format_number(ke)
    parts = [_PROBLEM[variant]]
    if cot == "steps":
        parts.append(_FIND_V_STEPS[variant])
        if fmt != "drop_height":
            parts.append(_SQUARE_STEPS)
        parts.append(_KE_STEPS)
    elif cot == "worked":
        parts.append(_FIND_V_WORKED[variant])
        if fmt != "drop_height":
            parts.append(_SQUARE_WORKED)
        parts.append(_KE_WORKED)
    parts.append(_ENDING)
    template = " ".join(parts) + (" {ke} J." if cot == "worked" else "")
    text, spans = render(template, values, plain=("article", "obj"))
    labels = {"m": m, "v": v, "v_squared": v * v, "ke": float(ke), "format": fmt}
    return Prompt(text=text, labels=labels, spans=spans)


@register_generator("kinetic_energy", default_n=50)
def kinetic_energy(
    n: int,
    rng: np.random.Generator,
    *,
    cot: str = "none",
    formats: Sequence[str] | str | None = None,
) -> list[Prompt]:
    """Kinetic-energy problems with the speed implied (5 formats); cot none|steps|worked."""
    if cot not in COT_MODES:
        raise InvalidArgumentError(f"expected cot in {', '.join(COT_MODES)}, got {cot!r}")
    fmts = _check_formats(formats)
    # Balanced over formats (as the reference drew samples_per_prompt of each), in random order.
    fmt_idx = rng.permutation(np.arange(n) % len(fmts)).tolist()
    vs = rng.integers(*V_RANGE, size=n).tolist()
    ms = rng.integers(*M_RANGE, size=n).tolist()
    return [kinetic_energy_prompt(fmts[f], m, v, rng, cot=cot) for f, m, v in zip(fmt_idx, ms, vs)]
