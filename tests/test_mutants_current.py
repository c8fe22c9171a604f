"""The hand-made mutants (tests/mutation) still apply: a refactor that moves the code a mutant
changes must move the mutant too, or the mutation run silently counts it as stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mutation.mutants import MUTANTS

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_mutant_text_occurs_once_and_its_tests_exist(mutant) -> None:
    source = (REPO / mutant.file).read_text(encoding="utf-8")
    assert source.count(mutant.old) == 1, f"{mutant.id}: update its file or text in mutants.py"
    assert mutant.old != mutant.new
    for test in mutant.tests:
        assert (REPO / test.split("::")[0]).exists(), f"{mutant.id}: no test file {test}"
