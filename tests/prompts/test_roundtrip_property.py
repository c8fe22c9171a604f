"""Property test: any valid prompt set survives JSONL and CSV unchanged (same hash)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from actstore.prompts import Prompt, PromptSet

# Text with quotes, commas, newlines, non-ASCII and surrogate-free unicode.
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
).filter(lambda t: t.strip() != "")
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda n: n not in ("text", "spans")
)
NUMBER = st.one_of(
    st.integers(-(10**12), 10**12), st.floats(allow_nan=False, allow_infinity=False, width=64)
)
# A string label that cannot be mistaken for a number in CSV (which types columns by content).
WORD = st.text(alphabet="abcxyz ,\"'é\n", min_size=1, max_size=8).map(lambda s: "w" + s)


@st.composite
def prompts(draw: st.DrawFn, kinds: dict[str, str]) -> Prompt:
    text = draw(TEXT)
    labels = {}
    for name, kind in kinds.items():
        if draw(st.booleans()):
            labels[name] = draw(NUMBER if kind == "num" else WORD)
    spans = {}
    # Disjoint spans from sorted cut points (nesting is covered by the unit tests).
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=6)))
    for i, (a, b) in enumerate(zip(cuts[::2], cuts[1::2])):
        if a < b:
            spans[f"s{i}"] = (a, b)
    return Prompt(text=text, labels=labels, spans=spans)


@st.composite
def prompt_sets(draw: st.DrawFn) -> PromptSet:
    kinds = draw(st.dictionaries(NAME, st.sampled_from(["num", "str"]), max_size=4))
    items = draw(st.lists(prompts(kinds), min_size=1, max_size=5))
    return PromptSet(name="p", prompts=tuple(items))


@settings(max_examples=60, deadline=None)
@given(prompt_sets())
# Found by this test: a lone "\r" in a text was written unquoted to CSV and lost.
@example(PromptSet(name="p", prompts=(Prompt(text="0\r", spans={"s0": (0, 1)}),)))
def test_jsonl_and_csv_round_trip(ps: PromptSet) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("jsonl", "csv"):
            path = Path(tmp) / f"p.{fmt}"
            getattr(ps, f"to_{fmt}")(path)
            back = getattr(PromptSet, f"from_{fmt}")(path)
            assert back.prompts == ps.prompts, fmt
            assert back.content_hash() == ps.content_hash()
