"""No import cycle among the modules of ``src/actstore``.

The graph is built from the source with :mod:`ast` (nothing is imported), one node per module
(a package is its ``__init__``). An edge ``a -> b`` is any ``import b`` / ``from b import x`` /
``from b import c`` (``b.c`` a module: the edge goes to ``b.c`` as well) written in ``a``, and
this test counts all of them alike:

- at module level;
- inside functions and methods (a deferred import): deferring an import only hides a cycle from
  the interpreter; the two modules still need each other, so neither can be read, tested or moved
  without the other;
- under ``if TYPE_CHECKING:``: a type named in a signature is a dependency of the module's API
  just as much, and a cycle that only type checkers see is still a circle of responsibilities.

Left out: a module importing one of its own ancestor packages (``from actstore.prompts import
x`` inside ``actstore.prompts._io``): that names the package's public face, whose ``__init__``
re-exports its submodules, and is not a circle between two pieces of code.

A cycle is a strongly connected component of more than one module; each is named with the
imports that close it.

The same graph, summed over packages, checks the layering of ``docs/explanation/architecture.md``:
a package imports only packages of lower layers (data flows prompts -> extractors -> store ->
analysis; the store reads the position grammar of prompts, so prompts sit below it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules(src: Path, package: str) -> dict[str, Path]:
    mods = {}
    for f in sorted((src / package).rglob("*.py")):
        parts = list(f.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Every module name ``node`` may import, resolved against ``module`` (relative imports)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def import_graph(src: Path, package: str) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line of the first such import}}`` within ``package``.

    Counts imports at module level, inside functions and under ``TYPE_CHECKING`` alike.
    """
    mods = _modules(src, package)
    graph: dict[str, dict[str, int]] = {}
    for name, path in mods.items():
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(node, name, path.name == "__init__.py"):
                own_ancestor = name.startswith(target + ".")
                if target in mods and target != name and not own_ancestor:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(cycles)


def describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    """One line per cycle: its modules and the imports between them (``a:LINE -> b``)."""
    members = set(cycle)
    edges = [
        f"{a}:{line} -> {b}" for a in cycle for b, line in sorted(graph[a].items()) if b in members
    ]
    return f"cycle {' <-> '.join(cycle)} ({'; '.join(edges)})"


def test_no_import_cycle_in_actstore() -> None:
    graph = import_graph(SRC, "actstore")
    assert len(graph) > 100  # the walk found the package, not an empty folder
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in src/actstore:\n" + "\n".join(
        describe(c, graph) for c in cycles
    )


#: The layers of ``docs/explanation/architecture.md``: a module may import modules of its own
#: package or of a lower layer. Keys are the first part below ``actstore``.
LAYERS = {
    "errors": 0,
    "_version": 0,
    "_validate": 1,  # its errors come from actstore.errors
    "_jsonout": 0,
    "_reserved": 0,
    "_locations": 1,
    "_progress": 1,
    "_extras": 1,
    "locations": 2,
    "prompts": 3,
    "store": 4,
    "actstore": 5,  # the top-level package: ``actstore.open`` over the store
    "extractors": 6,
    "analysis": 6,
    "torch": 6,
    "tinymodels": 6,
    "experiment": 7,
    "commands": 8,
    "cli": 9,
    "__main__": 10,
}
#: Imports against the layering that are known; each must still exist (a stale entry fails), so
#: this list only shrinks. Empty since the reserved label names moved below prompts and store.
_KNOWN_UPWARD: set[tuple[str, str]] = set()


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def upward_imports(graph: dict[str, dict[str, int]]) -> set[tuple[str, str]]:
    """``(importer, imported)`` pairs where a module imports a module of a layer not below its own
    (its own package excepted); a part missing from :data:`LAYERS` counts as the top layer."""
    top = max(LAYERS.values()) + 1
    out = set()
    for a, edges in graph.items():
        for b in edges:
            pa, pb = _part(a), _part(b)
            if pa != pb and LAYERS.get(pa, top) <= LAYERS.get(pb, top):
                out.add((a, b))
    return out


def test_packages_import_only_lower_layers() -> None:
    graph = import_graph(SRC, "actstore")
    parts = {_part(m) for m in graph}
    assert parts <= set(LAYERS), f"modules without a layer: {sorted(parts - set(LAYERS))}"
    found = upward_imports(graph)
    assert found >= _KNOWN_UPWARD, f"stale entries: {sorted(_KNOWN_UPWARD - found)}"
    bad = sorted(found - _KNOWN_UPWARD)
    assert not bad, "imports against the layering:\n" + "\n".join(
        f"{a}:{graph[a][b]} -> {b}" for a, b in bad
    )


def _package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("a_text", "b_text"),
    [
        ("from pkg import b\n", "from pkg.a import f\n"),  # both at module level
        ("import pkg.b\n", "def g():\n    from pkg import a\n"),  # deferred in a function
        (  # relative, and the way back only for the type checker
            "from . import b\n",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n",
        ),
    ],
    ids=["module-level", "in-function", "type-checking"],
)
def test_a_planted_cycle_is_found_and_named(tmp_path, a_text, b_text) -> None:
    src = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": a_text,
            "pkg/b.py": b_text,
            "pkg/c.py": "from pkg import a, b\n",  # depends on both, closes no circle
            "pkg/sub/__init__.py": "from pkg.sub.d import x\n",
            "pkg/sub/d.py": "from pkg.sub import y\nx = 1\n",  # own ancestor package: left out
        },
    )
    graph = import_graph(src, "pkg")
    cycles = find_cycles(graph)
    assert cycles == [["pkg.a", "pkg.b"]]
    text = describe(cycles[0], graph)
    assert text.startswith("cycle pkg.a <-> pkg.b (") and "pkg.a:1 -> pkg.b" in text
    assert "pkg.b:" in text and "-> pkg.a" in text


def test_an_upward_import_is_found() -> None:
    graph = {
        "actstore.store._x": {"actstore.prompts._p": 1, "actstore.errors": 2},
        "actstore.prompts._p": {"actstore.analysis._a": 3},
        "actstore.analysis._a": {"actstore.analysis._b": 4, "actstore.store._x": 5},
        "actstore.analysis._b": {},
        "actstore.extractors._e": {"actstore.analysis._b": 6},
    }
    assert upward_imports(graph) == {
        ("actstore.prompts._p", "actstore.analysis._a"),
        ("actstore.extractors._e", "actstore.analysis._b"),  # same layer, other package
    }


def test_an_acyclic_package_has_no_cycle(tmp_path) -> None:
    src = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.b import g\n",
            "pkg/a.py": "x = 1\n",
            "pkg/b.py": "from pkg.a import x\ndef g():\n    from pkg import a\n",
        },
    )
    graph = import_graph(src, "pkg")
    assert graph["pkg.b"] == {"pkg.a": 1}  # `from pkg import a` resolves to pkg.a, not pkg
    assert find_cycles(graph) == []
