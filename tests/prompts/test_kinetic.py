"""The kinetic-energy generator: every label re-derived from the numbers written in the text.

The parsing below is written from the prompt wording, independently of the generator's code.
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from actstore.prompts import Prompt, generate

NUM = r"(\d+(?:\.\d+)?)"
# format -> (regex over the problem statement, function of the captured numbers -> v)
PROBLEMS = {
    "distance_time": (
        rf"(?:A|An) {NUM} kg [a-z ]+ travels {NUM} m in {NUM} s",
        lambda m, d, t: d / t,
    ),
    "drop_height": (
        rf"(?:A|An) {NUM} kg [a-z ]+ is dropped from rest from a height of {NUM} m\. "
        rf"Take g = {NUM} m/s²",
        lambda m, h, g: _sqrt(2 * g * h),
    ),
    "acceleration": (
        rf"(?:A|An) {NUM} kg [a-z ]+ starts from rest .* acceleration of {NUM} m/s² for {NUM} s",
        lambda m, a, t: a * t,
    ),
    "momentum": (
        rf"A [a-z ]+ with a mass of {NUM} kg has a momentum of {NUM} kg·m/s",
        lambda m, p: p / m,
    ),
    "ratio_faster": (
        rf"(?:A|An) {NUM} kg [a-z ]+ moves {NUM} times as fast as a second [a-z ]+ that moves at "
        rf"{NUM} m/s",
        lambda m, k, u: k * u,
    ),
    "ratio_slower": (
        rf"(?:A|An) {NUM} kg [a-z ]+ moves at a constant speed\. "
        rf"A second [a-z ]+ moves {NUM} times as fast, at {NUM} m/s",
        lambda m, k, u: u / k,
    ),
}
GIVEN_NAMES = {
    "distance_time": ("m", "distance", "time"),
    "drop_height": ("m", "height", "g"),
    "acceleration": ("m", "acceleration", "time"),
    "momentum": ("m", "momentum"),
    "ratio_faster": ("m", "ratio", "speed_b"),
    "ratio_slower": ("m", "ratio", "speed_b"),
}


def _sqrt(x: Fraction) -> Fraction:
    root = Fraction(round(float(x) ** 0.5))
    assert root * root == x, f"{x} is not a perfect square"
    return root


def _parse(p: Prompt) -> tuple[str, re.Match[str], Fraction, Fraction]:
    hits = [(k, m) for k, (pat, _) in PROBLEMS.items() if (m := re.match(pat, p.text))]
    assert len(hits) == 1, p.text
    key, m = hits[0]
    nums = [Fraction(g) for g in m.groups()]
    v = PROBLEMS[key][1](*nums)
    return key, m, nums[0], Fraction(v)


def _base(span_name: str) -> str:
    return re.sub(r"_\d+$", "", span_name)


@pytest.mark.parametrize("cot", ["none", "steps", "worked"])
def test_labels_rederived_from_text(cot: str) -> None:
    ps = generate("kinetic_energy", 120, seed=11, cot=cot)
    for p in ps:
        key, m, mass, v = _parse(p)
        assert p.labels["format"] == ("ratio" if key.startswith("ratio") else key)
        assert v.denominator == 1
        assert 2 <= v < 20
        assert p.labels["m"] == mass
        assert p.labels["v"] == v
        assert p.labels["v_squared"] == v * v
        assert 4 <= v * v <= 361
        assert Fraction(p.labels["ke"]) == mass * v * v / 2
        # The given quantities carry spans exactly where the problem statement writes them.
        for i, name in enumerate(GIVEN_NAMES[key], start=1):
            assert p.spans[name] == m.span(i), (name, p.text)


@pytest.mark.parametrize("cot", ["none", "steps", "worked"])
def test_span_texts_equal_their_values(cot: str) -> None:
    for p in generate("kinetic_energy", 60, seed=5, cot=cot):
        key, m, _, _ = _parse(p)
        given = dict(zip(GIVEN_NAMES[key], m.groups()))
        for name in p.spans:
            base = _base(name)
            if base in ("m", "v", "v_squared", "ke"):
                assert Fraction(p.span_text(name)) == Fraction(p.labels[base]), (name, p.text)
            else:
                assert p.span_text(name) == given[base], (name, p.text)


def test_none_and_steps_write_no_intermediate() -> None:
    for cot in ("none", "steps"):
        for p in generate("kinetic_energy", 40, seed=2, cot=cot):
            assert p.text.endswith("The kinetic energy is")
            _, m, _, _ = _parse(p)
            rest = p.text[m.end() :]
            assert not re.search(r"\d", rest), rest
            assert not {"v", "v_squared", "ke"} & set(p.spans)
            if cot == "steps":
                assert "First," in rest
                assert "Finally," in rest
            else:
                assert "First," not in rest


def test_worked_writes_every_intermediate() -> None:
    for p in generate("kinetic_energy", 60, seed=9, cot="worked"):
        v, v2, ke = p.labels["v"], p.labels["v_squared"], p.labels["ke"]
        m_v = re.search(r"v = [^=]+ = (\d+) m/s|so v = (\d+) m/s", p.text)
        m_v2 = re.search(r"v² = [^=]+ = (\d+) m²/s²", p.text)
        m_ke = re.search(rf"KE = 0\.5 × (\d+) × (\d+)\. The kinetic energy is {NUM} J\.$", p.text)
        assert m_v, p.text
        assert m_v2, p.text
        assert m_ke, p.text
        assert int(m_v.group(1) or m_v.group(2)) == v
        assert int(m_v2.group(1)) == v2
        assert int(m_ke.group(1)) == p.labels["m"]
        assert int(m_ke.group(2)) == v2
        assert Fraction(m_ke.group(3)) == Fraction(ke)
        # The named intermediate spans are the first writing of each result.
        first_v = m_v.span(1) if m_v.group(1) else m_v.span(2)
        assert p.spans["v"] == first_v
        assert p.spans["v_squared"] == m_v2.span(1)
        assert p.spans["ke"] == m_ke.span(3)
        # v is computed before it is squared (except the drop, where v² comes first).
        if p.labels["format"] != "drop_height":
            assert p.spans["v"][0] < p.spans["v_squared"][0] < p.spans["ke"][0]


def test_every_written_quantity_has_a_span() -> None:
    for p in generate("kinetic_energy", 60, seed=4, cot="worked"):
        covered = np.zeros(len(p.text), dtype=bool)
        for s, e in p.spans.values():
            covered[s:e] = True
        uncovered = [
            m.group() for m in re.finditer(r"\d+(?:\.\d+)?", p.text) if not covered[m.start()]
        ]
        # Only the constants of the formulas (0.5 in KE = 0.5 m v², 2 in v² = 2 g h) are not
        # quantities of the problem.
        assert set(uncovered) <= {"0.5", "2"}, (uncovered, p.text)
        assert uncovered.count("0.5") == 1


def test_formats_are_balanced_and_ranges_covered() -> None:
    ps = generate("kinetic_energy", 503, seed=1)
    counts = Counter(ps.label_array("format"))
    assert set(counts) == {"distance_time", "drop_height", "acceleration", "momentum", "ratio"}
    assert max(counts.values()) - min(counts.values()) <= 1
    assert set(ps.label_array("v").astype(int)) == set(range(2, 20))
    assert ps.label_names == ["m", "v", "v_squared", "ke", "format"]


def test_format_subset_option() -> None:
    ps = generate("kinetic_energy", 10, formats="momentum,drop_height")
    assert set(ps.label_array("format")) == {"momentum", "drop_height"}
    ps2 = generate("kinetic_energy", 10, formats=["momentum", "drop_height"])
    assert ps2 == ps
    with pytest.raises(ValueError, match="expected formats from"):
        generate("kinetic_energy", 3, formats="speedy")
    with pytest.raises(ValueError, match="expected cot in none, steps, worked"):
        generate("kinetic_energy", 3, cot="verbose")
