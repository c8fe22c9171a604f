"""docs/numerics.md's bf16 padding tables are benchmarks/bf16_padding.py's output, and true.

The script's ulp count is checked against an independent count (position in the sorted list of
every finite bf16 number), its comparison on a tiny model against that count over the two
caches it wrote, and the page's tables against the script's format and the page's own claim.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from benchmarks import bf16_padding as script

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "numerics.md"


def _rank(values: np.ndarray) -> np.ndarray:
    """Index of each bf16 value among all distinct finite bf16 numbers, sorted (0 == -0)."""
    import ml_dtypes

    every = np.arange(1 << 16, dtype=np.uint16).view(ml_dtypes.bfloat16).astype(np.float32)
    table = np.unique(every[np.isfinite(every)])  # -0.0 and 0.0 are one entry
    return np.searchsorted(table, values.astype(np.float32))


def independent_ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(_rank(a).astype(np.int64) - _rank(b))


def test_ulp_distance_counts_bf16_numbers_between():
    import ml_dtypes

    rng = np.random.default_rng(0)
    bits = rng.integers(0, 1 << 16, size=20_000, dtype=np.uint16)
    a = bits.view(ml_dtypes.bfloat16)
    ok = np.isfinite(a.astype(np.float32))
    a = a[ok]
    # neighbours, near neighbours, far values, the other sign, zeros of both signs
    step = rng.integers(-6, 7, size=a.size).astype(np.int16)
    b = (a.view(np.int16) + step).view(ml_dtypes.bfloat16)
    b = np.where(np.isfinite(b.astype(np.float32)), b, a)
    pairs = [
        (a, b),
        (a, a[::-1]),
        (a, (-a.astype(np.float32)).astype(ml_dtypes.bfloat16)),
        (np.array([0.0, -0.0, 0.0], ml_dtypes.bfloat16), np.array([-0.0, 0.0, 1e-40], np.float32)
         .astype(ml_dtypes.bfloat16)),
    ]  # fmt: skip
    for x, y in pairs:
        np.testing.assert_array_equal(script.ulp_distance(x, y), independent_ulps(x, y))
    assert script.ulp_distance(a, b).max() == 6


def parse_table(text: str) -> list[dict[str, object]]:
    """Rows of a table in the script's format (checks the header and each row's arithmetic)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert lines, "no table"
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head == list(script.HEADER)
    assert re.fullmatch(r"\|(---\|)+", lines[1])
    rows = []
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        assert len(cells) == len(head), ln
        row: dict[str, object] = {"layer": cells[0], "values": int(cells[1].replace(",", ""))}
        for (label, _, _), cell in zip(script.BUCKETS, cells[2:-2]):
            m = re.fullmatch(r"([\d,]+) \((\d+\.\d\d)%\)", cell)
            assert m, cell
            count = int(m[1].replace(",", ""))
            assert float(m[2]) == pytest.approx(100 * count / row["values"], abs=0.005)
            row[label] = count
        row["max abs diff"] = float(cells[-2])
        row["rms"] = float(cells[-1])
        assert sum(row[b[0]] for b in script.BUCKETS) == row["values"], ln
        assert row["max abs diff"] >= 0 and row["rms"] > 0
        rows.append(row)
    *layers, total = rows
    assert total["layer"] == "all" and layers
    for key in ("values", *(b[0] for b in script.BUCKETS)):
        assert total[key] == sum(r[key] for r in layers), key
    assert total["max abs diff"] == max(r["max abs diff"] for r in layers)
    return rows


def test_script_on_a_tiny_model_matches_an_independent_count(tmp_path):
    import zarr

    import actstore.store  # noqa: F401  (registers bfloat16)

    rows, layers, setup = script.measure(
        d_model=64, n_layers=2, n_heads=4, n_prompts=10, max_batch_tokens=96, device="cpu",
        work=tmp_path,
    )  # fmt: skip
    assert layers == [0, 1]
    assert setup["padding"] > 0 and setup["batches"] > 1
    got = {}
    for name in ("single", "padded"):
        g = zarr.open_group(str(tmp_path / f"{name}.zarr"), mode="r")["padding"]
        got[name] = np.asarray(g["resid_post"][:])
        n_tokens = np.asarray(g["n_tokens"][:])
    for li, row in enumerate(rows):
        a = np.concatenate([got["single"][p, li, :n] for p, n in enumerate(n_tokens)]).ravel()
        b = np.concatenate([got["padded"][p, li, :n] for p, n in enumerate(n_tokens)]).ravel()
        ulps = independent_ulps(a, b)
        assert row["values"] == a.size == int(n_tokens.sum()) * 64
        assert row["0 ulp"] == int(np.sum(ulps == 0))
        assert row["1 ulp"] == int(np.sum(ulps == 1))
        assert row["2-4 ulp"] == int(np.sum((ulps >= 2) & (ulps <= 4)))
        assert row["> 4 ulp"] == int(np.sum(ulps > 4))
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        assert row["max abs diff"] == pytest.approx(diff.max(), rel=1e-6)
    table = script.render(rows, layers)
    parsed = parse_table(table)
    assert [r["values"] for r in parsed[:-1]] == [r["values"] for r in rows]


def _sections() -> dict[str, str]:
    text = DOC.read_text()
    found = re.findall(
        r"<!-- BEGIN bf16-padding (\w+) -->\n(.*?)\n<!-- END bf16-padding \1 -->", text, re.S
    )
    return dict(found)


def test_numerics_page_holds_the_scripts_tables_and_its_claim_holds():
    sections = _sections()
    assert "cpu" in sections, "run: python benchmarks/bf16_padding.py --write-docs"
    for kind, body in sections.items():
        assert body.startswith("Machine: "), kind
        assert "Command: `python benchmarks/bf16_padding.py --write-docs" in body
        total = parse_table(body)[-1]
        # the page says padded batches are not bounded by one ulp: the table must show it
        assert total["2-4 ulp"] + total["> 4 ulp"] > 0, kind
        assert total["0 ulp"] > total["values"] / 2, kind  # "most values agree exactly"
    text = DOC.read_text()
    assert "not bounded by one bf16 ulp" in text and "Most values agree exactly" in text


def test_docs_point_to_the_measurement_instead_of_a_one_bit_claim():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        text = page.read_text()
        assert "last bf16 bit" not in text and "in the last bit" not in text, page
    # the known limits and the extraction reference send readers to the measured distribution
    for page in ("limits.md", "reference/extract.md"):
        assert "](numerics.md)" in (ROOT / "docs" / page).read_text().replace("../", ""), page
