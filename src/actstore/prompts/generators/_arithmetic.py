"""The reference study's arithmetic prompts: multiplication and squaring, answer written.

The phrasings are the five of ``detect_computation.py`` each; ``x`` (and ``y``) are drawn uniformly
from [2, 20), so the written answer ``value`` lies in [4, 361]. The answer is part of the text
(the reference probes read the last token, where the answer is already visible).
"""

from __future__ import annotations

import numpy as np

from actstore.errors import InvalidArgumentError
from actstore.prompts._prompt import Prompt
from actstore.prompts._registry import register_generator
from actstore.prompts._render import render

__all__ = ["MULTIPLICATION_TEMPLATES", "SQUARING_TEMPLATES"]

#: template id -> template; ``{x}``, ``{y}`` operands, ``{z}`` the written answer.
MULTIPLICATION_TEMPLATES: dict[str, str] = {
    "times": "{x} times {y} equals {z}",
    "multiplied_by": "{x} multiplied by {y} is {z}",
    "product_of": "The product of {x} and {y} is {z}",
    "symbol": "{x} × {y} = {z}",
    "multiply_colon": "Multiply {x} by {y}: {z}",
}

#: template id -> template; ``{x}`` the base, ``{z}`` the written square.
SQUARING_TEMPLATES: dict[str, str] = {
    "squared_equals": "{x} squared equals {z}",
    "square_of": "The square of {x} is {z}",
    "superscript": "{x}² = {z}",
    "power_of_2": "{x} to the power of 2 is {z}",
    "question": "What is {x} squared? {z}",
}

_NAMES = {"z": "answer"}


def _check_range(low: int, high: int) -> None:
    if not (isinstance(low, int) and isinstance(high, int) and 0 <= low < high):
        raise InvalidArgumentError(
            f"expected integers 0 <= low < high, got low={low!r}, high={high!r}"
        )


def _interaction(x: int, y: int, low: int, high: int) -> float:
    """(x - c)(y - c), c the middle of the operand range: the part of x·y not linear in x and y.

    For operands uniform on [2, 20) a linear function of x and y explains ~89 % of the variance of
    x·y, so a probe for ``value`` succeeds even on a model that only copies its inputs; a probe for
    ``interaction`` needs the product actually computed.
    """
    c = (low + high - 1) / 2
    return (x - c) * (y - c)


def _multiplication(n: int, rng: np.random.Generator, low: int, high: int) -> list[Prompt]:
    ids = list(MULTIPLICATION_TEMPLATES)
    xs = rng.integers(low, high, size=n)
    ys = rng.integers(low, high, size=n)
    ts = rng.integers(0, len(ids), size=n)
    out = []
    for x, y, t in zip(xs.tolist(), ys.tolist(), ts.tolist()):
        z = x * y
        text, spans = render(
            MULTIPLICATION_TEMPLATES[ids[t]], {"x": str(x), "y": str(y), "z": str(z)}, names=_NAMES
        )
        labels = {
            "x": x,
            "y": y,
            "value": z,
            "interaction": _interaction(x, y, low, high),
            "operation": "multiplication",
            "template": ids[t],
        }
        out.append(Prompt(text=text, labels=labels, spans=spans))
    return out


def _squaring(n: int, rng: np.random.Generator, low: int, high: int) -> list[Prompt]:
    ids = list(SQUARING_TEMPLATES)
    xs = rng.integers(low, high, size=n)
    ts = rng.integers(0, len(ids), size=n)
    out = []
    for x, t in zip(xs.tolist(), ts.tolist()):
        z = x * x
        text, spans = render(SQUARING_TEMPLATES[ids[t]], {"x": str(x), "z": str(z)}, names=_NAMES)
        labels = {
            "x": x,
            "value": z,
            "interaction": _interaction(x, x, low, high),
            "operation": "squaring",
            "template": ids[t],
        }
        out.append(Prompt(text=text, labels=labels, spans=spans))
    return out


@register_generator("multiplication", default_n=1000)
def multiplication(
    n: int, rng: np.random.Generator, *, low: int = 2, high: int = 20
) -> list[Prompt]:
    """'x times y equals z', five phrasings; spans x, y, answer.

    Labels x, y, value = z, interaction = (x - c)(y - c) with c the middle of [low, high),
    operation, template.
    """
    _check_range(low, high)
    return _multiplication(n, rng, low, high)


@register_generator("squaring", default_n=1000)
def squaring(n: int, rng: np.random.Generator, *, low: int = 2, high: int = 20) -> list[Prompt]:
    """'x squared equals z' in five phrasings; spans x, answer.

    Labels x, value = x², interaction = (x - c)² with c the middle of [low, high), operation,
    template.
    """
    _check_range(low, high)
    return _squaring(n, rng, low, high)


@register_generator("arithmetic", default_n=2000)
def arithmetic(n: int, rng: np.random.Generator, *, low: int = 2, high: int = 20) -> list[Prompt]:
    """The reference probe training set: half multiplication, half squaring, shuffled together."""
    _check_range(low, high)
    n_mult = (n + 1) // 2
    prompts = _multiplication(n_mult, rng, low, high) + _squaring(n - n_mult, rng, low, high)
    # Shuffled so that contiguous folds or blocks do not separate the two operations.
    return [prompts[i] for i in rng.permutation(n).tolist()]
