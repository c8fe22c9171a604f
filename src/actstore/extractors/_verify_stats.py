"""Comparing stored activations with a fresh forward: ulp distances and the tolerance rule.

numpy only (no torch), so the rule can be tested and documented on its own. See docs/verify.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BINS", "TOLERANCES", "LayerResult", "ulp_distance"]

#: dtype -> (rtol, stol): a value passes when
#: ``|stored - fresh| <= rtol * |fresh| + stol * rms(fresh vector of that token)``.
#: float32: what padded batches give at most, measured (docs/verify.md), ~1e-5. bfloat16: padded
#: batches run other kernels and the difference grows with depth (docs/numerics.md), so the bound
#: is a fraction of the token's RMS, not a count of ulp; float16 has 3 more mantissa bits.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-5, 1e-5),
    "bfloat16": (2.0**-5, 2.0**-3),
    "float16": (2.0**-8, 2.0**-6),
}

#: ulp-difference bins reported per layer
BINS = ("0", "1", "2-4", "5-16", ">16")

_BITS = {
    "float32": (np.uint32, 0x7FFFFFFF),
    "bfloat16": (np.uint16, 0x7FFF),
    "float16": (np.uint16, 0x7FFF),
}


def ulp_distance(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    """How many representable *dtype* numbers lie between *a* and *b* (elementwise, int64).

    Both arrays hold values of *dtype* (bfloat16 as ``ml_dtypes.bfloat16``); +0 and -0 are 0
    apart. NaN or inf give meaningless distances (extraction refuses non-finite values).
    """
    uint, mag = _BITS[dtype]

    def ordered(x: np.ndarray) -> np.ndarray:
        bits = np.ascontiguousarray(x).view(uint).astype(np.int64)
        sign = bits > mag
        return np.where(sign, -(bits & mag), bits)

    return np.abs(ordered(a) - ordered(b))


@dataclass(kw_only=True)
class LayerResult:
    """One (prompt set, hook, layer): how far the stored values are from a fresh forward."""

    set_name: str
    hook: str
    layer: int
    dtype: str
    n_values: int = 0
    max_abs_diff: float = 0.0
    ulp_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BINS, 0))
    n_over: int = 0
    #: where the value furthest beyond its allowance sits (prompt, token, d_model index)
    worst: dict[str, Any] | None = None
    _worst_ratio: float = -1.0

    @property
    def ok(self) -> bool:
        return self.n_over == 0

    def to_json(self) -> dict[str, Any]:
        rtol, stol = TOLERANCES[self.dtype]
        return {
            "set": self.set_name,
            "hook": self.hook,
            "layer": self.layer,
            "dtype": self.dtype,
            "ok": self.ok,
            "values": self.n_values,
            "max_abs_diff": self.max_abs_diff,
            "ulp": dict(self.ulp_counts),
            "values_over_tolerance": self.n_over,
            "tolerance": {"rtol": rtol, "rms_tol": stol},
            "worst": self.worst,
        }

    def line(self) -> str:
        n = max(self.n_values, 1)
        ulp = " ".join(f"{k}:{100 * v / n:.2f}%" for k, v in self.ulp_counts.items())
        head = (
            f"{'ok  ' if self.ok else 'FAIL'} {self.set_name} {self.hook} layer {self.layer}: "
            f"max |diff| {self.max_abs_diff:.4g} over {self.n_values:,} values; ulp {ulp}"
        )
        if self.ok or self.worst is None:
            return head
        w = self.worst
        return (
            f"{head}; {self.n_over:,} values over tolerance, worst prompt {w['prompt']} token "
            f"{w['token']} (d_model {w['d_model']}): stored {w['stored']:.6g}, fresh "
            f"{w['fresh']:.6g}, allowed |diff| {w['allowed']:.3g}"
        )

    def add(self, prompt: int, stored: np.ndarray, fresh: np.ndarray) -> None:
        """Fold in one prompt's ``(token, d_model)`` values (stored and fresh, *dtype*)."""
        s = stored.astype(np.float64)
        f = fresh.astype(np.float64)
        diff = np.abs(s - f)
        rtol, stol = TOLERANCES[self.dtype]
        rms = np.sqrt(np.mean(f * f, axis=-1, keepdims=True))
        allowed = rtol * np.abs(f) + stol * rms
        # a value with diff 0 always passes, also where the allowance is 0 (an all-zero vector)
        ratio = np.where(diff == 0, 0.0, diff / np.maximum(allowed, np.finfo(np.float64).tiny))
        ulp = ulp_distance(stored, fresh, self.dtype)
        edges = [(0, 0), (1, 1), (2, 4), (5, 16)]
        for name, (lo, hi) in zip(BINS, edges):
            self.ulp_counts[name] += int(np.count_nonzero((ulp >= lo) & (ulp <= hi)))
        self.ulp_counts[BINS[-1]] += int(np.count_nonzero(ulp > 16))
        self.n_values += int(diff.size)
        if diff.size:
            self.max_abs_diff = max(self.max_abs_diff, float(diff.max()))
        over = ratio > 1.0
        self.n_over += int(np.count_nonzero(over))
        if diff.size and (top := float(ratio.max())) > self._worst_ratio:
            self._worst_ratio = top
            t, d = (int(x) for x in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
            self.worst = {
                "prompt": prompt,
                "token": t,
                "d_model": d,
                "stored": float(s[t, d]),
                "fresh": float(f[t, d]),
                "abs_diff": float(diff[t, d]),
                "allowed": float(allowed[t, d]),
                "diff_over_allowed": top,
            }
