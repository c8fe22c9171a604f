"""The light side of the package never imports the heavy stack."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "transformer_lens", "matplotlib")


@pytest.mark.parametrize(
    "modules",
    [
        ["actstore"],
        ["actstore", "actstore.store"],
        ["actstore", "actstore.analysis"],
        ["actstore", "actstore.prompts"],
        ["actstore", "actstore.cli"],
    ],
)
def test_light_imports_do_not_load_heavy_stack(modules: list[str]) -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing {modules} loaded {out}"


def test_cli_parser_builds_without_heavy_stack() -> None:
    code = (
        "import sys\nfrom actstore.cli import build_parser\nbuild_parser()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
