"""The shape of ``actstore.store`` (docs/explanation/store-internals.md), read from the source.

* ``format`` <- ``core`` <- ``ops``: a layer never imports one above it (any import, deferred or
  type-only included);
* no import cycle among the modules of ``actstore.store`` (deferred imports count; type-only
  ones do not, they never run);
* zarr's internals (``zarr.core``) are imported by the adapter ``format/_zarr.py`` only;
* outside ``actstore.store`` nothing imports a private store module, and the commands that
  drive the store use public ``actstore.store`` names only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import actstore.store

SRC = Path(actstore.store.__file__).resolve().parents[1]  # .../src/actstore
STORE = SRC / "store"
LAYERS = ("format", "core", "ops")


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, type_only: bool) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import in *path* (``type_only``: with TYPE_CHECKING ones)."""
    tree = ast.parse(path.read_text())
    out = []
    for node in tree.body:
        type_block = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        if type_block and not type_only:
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom) and sub.module and not sub.level:
                out.append((sub.module, [a.name for a in sub.names]))
            elif isinstance(sub, ast.Import):
                out.extend((a.name, []) for a in sub.names)
    return out


def _store_files() -> list[Path]:
    return sorted(STORE.rglob("*.py"))


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["actstore", "store"] else None


@pytest.mark.parametrize("path", _store_files(), ids=lambda p: str(p.relative_to(STORE)))
def test_layers_import_downward_only(path: Path) -> None:
    own = _layer(_module(path))
    if own not in LAYERS:
        return  # actstore/store/__init__.py re-exports from every layer
    allowed = LAYERS[: LAYERS.index(own) + 1]
    up = [
        mod
        for mod, _ in _imports(path, type_only=True)
        if _layer(mod) is not None and _layer(mod) not in allowed
    ]
    assert not up, f"{own} imports a layer above it: {up}"


def test_no_import_cycle_in_store() -> None:
    modules = {_module(p): p for p in _store_files()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for mod, names in _imports(path, type_only=False):
            for cand in [mod, *(f"{mod}.{n}" for n in names)]:
                if cand in modules and cand != name and not name.startswith(cand + "."):
                    deps.add(cand)
        graph[name] = deps

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph[node])
        return False

    cycles = sorted(name for name in graph if reaches(name, name))
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_zarr_internals_only_in_the_adapter() -> None:
    users = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC) != Path("store/format/_zarr.py")
        and any(
            mod == "zarr.core" or mod.startswith("zarr.core.")
            for mod, _ in _imports(path, type_only=True)
        )
    )
    assert not users, f"zarr.core imported outside store/format/_zarr.py: {users}"


def test_no_private_store_module_imported_outside_store() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        if STORE in path.parents:
            continue
        for mod, _ in _imports(path, type_only=True):
            if mod.startswith("actstore.store.") and any(
                part.startswith("_") for part in mod.split(".")[2:]
            ):
                bad.append(f"{path.relative_to(SRC)}: {mod}")
    assert not bad, f"private store modules imported outside actstore.store: {bad}"


@pytest.mark.parametrize(
    "rel",
    ["commands/store.py", "commands/derive.py", "commands/export.py", "analysis/_persist.py"],
)
def test_store_drivers_use_public_names(rel: str) -> None:
    public = set(actstore.store.__all__)
    found = [
        (mod, names)
        for mod, names in _imports(SRC / rel, type_only=True)
        if mod.startswith("actstore.store")
    ]
    assert found, f"{rel} no longer imports actstore.store (update this test)"
    for mod, names in found:
        assert mod == "actstore.store", f"{rel} imports {mod}, not actstore.store"
        assert set(names) <= public, f"{rel} imports non-public {set(names) - public}"
