"""The light side of the package never imports the heavy stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
        ["actstore", "actstore.locations"],
        ["actstore", "actstore.tinymodels"],
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


COMMANDS = Path(__file__).resolve().parents[1] / "src" / "actstore" / "commands"


def _private_imports(path: Path) -> list[str]:
    """``module:line`` of each actstore import in *path* that names a ``_private`` module or name,
    other than the commands package's own helpers (``actstore.commands._x``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("actstore"):
            names = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("actstore")]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["actstore", "commands"]:
                continue
            if any(p.startswith("_") and p != "__version__" for p in parts):
                out.append(f"{name}:{node.lineno}")
    return sorted(out)


@pytest.mark.parametrize("command", sorted(p.name for p in COMMANDS.glob("*.py")))
def test_commands_use_only_public_names(command: str) -> None:
    """Every command uses the API a user has (``actstore.analysis``, ``actstore.store``,
    ``actstore.extractors``, ``actstore.locations``, ...), not private modules."""
    assert _private_imports(COMMANDS / command) == []


def test_private_imports_are_found(tmp_path: Path) -> None:
    f = tmp_path / "cmd.py"
    f.write_text(
        "from actstore.analysis import fit_probes\n"
        "from actstore.commands._analysis_print import print_metrics\n"
        "def g():\n    from actstore._locations import require_local\n"
        "import actstore.store._cache\n",
        encoding="utf-8",
    )
    assert _private_imports(f) == [
        "actstore._locations.require_local:4",
        "actstore.store._cache:5",
    ]
