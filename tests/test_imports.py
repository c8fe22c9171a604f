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


#: Leaf helpers every layer shares (no package's API: argument splitting, standard JSON out);
#: the commands may use them like any other module does.
SHARED_LEAVES = (("actstore", "_validate"), ("actstore", "_jsonout"))


def _private_imports(path: Path) -> list[str]:
    """``module:line`` of each actstore import in *path* that names a ``_private`` module or name,
    other than the commands package's own helpers (``actstore.commands._x``) and the shared
    leaves (:data:`SHARED_LEAVES`)."""
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
            if parts[:2] == ["actstore", "commands"] or tuple(parts[:2]) in SHARED_LEAVES:
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


#: Imported only by the functions that need them (issue 11: a probe fit in a fresh process).
LAZY = ("scipy.stats", "sklearn", "scipy.optimize", "threadpoolctl", "distributed")


def _loaded_after(code: str) -> list[str]:
    """The modules of :data:`LAZY` that a fresh interpreter holds after running ``code``."""
    script = code + f"\nimport sys\nprint(','.join(m for m in {LAZY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    return [m for m in out.splitlines()[-1].split(",") if m] if out else []


@pytest.mark.parametrize(
    "code",
    ["import actstore.analysis", "from actstore.analysis import fit_probes"],
)
def test_analysis_import_leaves_heavy_modules_for_later(code: str) -> None:
    """scipy.stats (~0.5 s), scikit-learn and distributed are not loaded by the import."""
    assert _loaded_after(code) == []


def test_every_public_analysis_name_imports_by_name() -> None:
    """``from actstore.analysis import X`` gives the defining module's object, for every X in
    ``__all__``; ``dir()`` lists them; an unknown name is an AttributeError."""
    code = (
        "import importlib, actstore.analysis as a\n"
        "bad = [n for n in a.__all__ if getattr(importlib.import_module("
        "'actstore.analysis.' + a._WHERE[n]), n) is not getattr(a, n)]\n"
        "exec('from actstore.analysis import ' + ', '.join(a.__all__))\n"
        "missing = sorted(set(a.__all__) - set(dir(a)))\n"
        "try:\n    a.no_such_name\nexcept AttributeError:\n    unknown = 'ok'\n"
        "print(bad, missing, unknown, sorted(a.__all__) == sorted(a._WHERE))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[] [] ok True"


def test_probe_fit_from_a_cache_does_not_import_distributed_or_sklearn(tmp_path: Path) -> None:
    """A ridge fit from a cache needs neither scikit-learn, scipy.stats nor ``distributed``
    (dask's default threaded scheduler, as before, while no client can be active)."""
    pytest.importorskip("distributed")  # what it guards against: dask importing it anyway
    from actstore.analysis import fit_probes
    from tests._fixtures.analysis import planted_set, write_set

    ds = planted_set(n_prompts=40, kind="train", d_model=8, n_tokens_max=10)
    write_set(tmp_path / "c.zarr", "s", ds)
    code = (
        "import sys\nfrom actstore.analysis import fit_probes\n"
        "p = fit_probes(sys.argv[1], prompt_set='s', target='value', cv=3, alphas=[1.0])\n"
        "print(p.metrics()[0]['cv_r2'])"
    )
    script = code + f"\nprint(','.join(m for m in {LAZY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "c.zarr")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[-1] == ""
    # the same numbers as the same fit in this process
    here = fit_probes(str(tmp_path / "c.zarr"), prompt_set="s", target="value", cv=3, alphas=[1])
    assert float(out[0]) == here.metrics()[0]["cv_r2"]
