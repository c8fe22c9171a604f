"""The README and the documentation pages: short README, no dead links, no file that does not exist.

``make docs`` (``mkdocs build --strict``, run by CI) checks the links between pages of the site;
these tests check what it cannot see: the README (outside the site), and repository paths written
as code (`` `tests/store/test_cache.py` ``), which no link checker follows. The CLI reference page
is rendered at build time by ``docs/_hooks/cli_reference.py``; it is compared here with what the
real command prints.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
#: Top-level folders and files of the repository that docs refer to as paths.
REPO_PREFIXES = ("src/", "tests/", "benchmarks/", "examples/", "experiments/", "docs/", ".ci/")
#: A package path without ``src/`` (`` `actstore/cli.py` ``) is checked under ``src/``.
PACKAGE_PREFIX = "actstore/"
REPO_FILES = ("Makefile", "pyproject.toml", "mkdocs.yml")
_CODE = re.compile(r"`([^`\s]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def repo_paths(text: str) -> set[str]:
    """Repository paths written as inline code in *text* (``::test`` suffixes dropped)."""
    out = set()
    for raw in _CODE.findall(text):
        path = raw.split("::", 1)[0].rstrip(".,;:)")
        if path.startswith("./"):
            path = path[2:]
        if path.startswith(PACKAGE_PREFIX):
            path = "src/" + path
        if not (path.startswith(REPO_PREFIXES) or path in REPO_FILES):
            continue
        if any(c in path for c in "<>{}$") or "..." in path:
            continue  # a pattern for the reader (`tests/_fixtures/<area>.py`), not one file
        out.add(path)
    return out


def _exists(path: str) -> bool:
    if any(c in path for c in "*?["):
        return any(ROOT.glob(path))
    return (ROOT / path).exists()


def test_readme_is_short() -> None:
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 200, f"README.md has {n} lines; move content into docs/ (the site), keep <= 200"


def test_repo_paths_named_in_readme_and_docs_exist() -> None:
    missing = [
        f"{page.relative_to(ROOT)}: {path}"
        for page in [README, *PAGES]
        for path in sorted(repo_paths(page.read_text(encoding="utf-8")))
        if not _exists(path)
    ]
    assert not missing, "paths named in the docs that are not in the repository:\n" + "\n".join(
        missing
    )


def test_repo_paths_detects_a_missing_file() -> None:
    """The check above can fail: a made-up path is reported, a pattern for the reader is not."""
    text = (
        "see `tests/store/test_cache.py::test_x`, `src/nope.py`, `actstore/cli.py` and "
        "`tests/_fixtures/<area>.py`"
    )
    assert repo_paths(text) == {"tests/store/test_cache.py", "src/nope.py", "src/actstore/cli.py"}
    assert _exists("tests/store/test_cache.py") and not _exists("src/nope.py")


def test_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    links = [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:|#", t)]
    assert links, "the README links to the docs sections"
    missing = [t for t in links if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


def test_readme_links_every_docs_section() -> None:
    """Each top-level part of the site's nav is reachable from the README."""
    text = README.read_text(encoding="utf-8")
    for page in (
        "docs/tutorial/demo.md",
        "docs/howto/gpu-node.md",
        "docs/reference/cli.md",
        "docs/reference/store-format.md",
        "docs/reference/errors.md",
        "docs/explanation/guarantees.md",
        "docs/benchmarks.md",
        "docs/limits.md",
    ):
        assert f"]({page})" in text, page


def _load_hook():
    path = DOCS / "_hooks" / "cli_reference.py"
    spec = importlib.util.spec_from_file_location("cli_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("command", [(), ("extract",), ("probe", "fit"), ("verify",)])
def test_cli_reference_is_what_the_command_prints(command: tuple[str, ...]) -> None:
    """The page's help text equals ``python -m actstore ... --help`` run as a real process."""
    rendered = _load_hook().render()
    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.run(
        [sys.executable, "-m", "actstore", *command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    title = " ".join(("actstore", *command))
    section = rendered.split(f"`{title}`\n\n```text\n", 1)[1].split("\n```", 1)[0]
    assert section == proc.stdout.rstrip()


def test_cli_reference_covers_every_command() -> None:
    """Every command ``actstore --help`` lists has its own section on the page."""
    proc = subprocess.run(
        [sys.executable, "-m", "actstore", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
        check=True,
    )
    block = proc.stdout.split("\n  COMMAND\n", 1)[1].split("\n\n", 1)[0]
    commands = [ln.split()[0] for ln in block.splitlines() if re.match(r"^    \w", ln)]
    assert len(commands) >= 10, proc.stdout
    rendered = _load_hook().render()
    for name in commands:
        assert f"# `actstore {name}`" in rendered, name


def _shell_commands(text: str) -> list[str]:
    """The ``actstore ...`` lines of the ```bash blocks of *text*, continuations joined."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("actstore "):
                out.append(line)
    return out


def test_readme_tour_commands_parse() -> None:
    """Every ``actstore`` command the README shows is accepted by the real parser."""
    from actstore.cli import build_parser

    commands = _shell_commands(README.read_text(encoding="utf-8"))
    assert len(commands) >= 5
    parser = build_parser()
    for line in commands:
        try:
            parser.parse_args(shlex.split(line)[1:])
        except SystemExit as exc:  # the parser's one-line error, exit 2
            raise AssertionError(f"README command does not parse: {line}") from exc


def _spec_table(text: str) -> dict[str, tuple[str, str]]:
    """``variable -> (dims, dtype)`` from the store format page's variables table."""
    section = text.split("## Variables", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            name = cells[0].split("`")[1]
            rows[name] = (cells[1].strip("`"), cells[2])
    return rows


def test_store_format_page_describes_a_written_cache(tmp_path: Path) -> None:
    """Every array and attribute key of a cache written through the store API is on the spec page,
    with the dims and dtype the page gives (labels and hooks by their pattern rows)."""
    import zarr

    from tests._fixtures.store import make_synthetic, write_synthetic

    syn = make_synthetic()
    url = tmp_path / "c.zarr"
    write_synthetic(url, syn)
    text = (DOCS / "reference" / "store-format.md").read_text(encoding="utf-8")
    table = _spec_table(text)
    root = zarr.open_group(str(url), mode="r")
    group = root["arith"]
    labels = {"value", "x", "template"}  # the synthetic set's label columns
    for name, arr in group.arrays():
        key = "<label>" if name in labels else name
        assert key in table, f"array {name!r} of a written cache is not on the spec page"
        dims, dtype = table[key]
        want_dims = tuple(d.strip() for d in dims.split(","))
        assert tuple(arr.metadata.dimension_names) == want_dims, name
        if name not in labels and name != "resid_post":
            assert str(arr.dtype).lower().replace("numpy.", "") in dtype.lower() or (
                dtype == "str" and "str" in str(arr.dtype).lower()
            ), (name, arr.dtype, dtype)
    tree = re.search(r'<set>/.*attrs\["actstore"\] = \{([^}]*)\}', text)
    assert tree is not None
    documented = {k.strip() for k in tree.group(1).split(",")}
    assert documented == set(group.attrs["actstore"]), "set attributes differ from the page"
    root_doc = re.search(r'cache\.zarr/\s+root attrs\["actstore"\] = \{([^}]*)\}', text)
    assert {k.strip() for k in root_doc.group(1).split(",")} == set(root.attrs["actstore"])


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_python_names_in_readme_and_docs_exist() -> None:
    """Every dotted ``actstore.x.y`` name the docs mention imports (no renamed or invented API)."""
    pattern = re.compile(r"(?<![/\w])(actstore(?:\.[A-Za-z_]\w*)+)(?!\.md)")
    found: dict[str, set[str]] = {}
    for page in [README, *PAGES]:
        for name in pattern.findall(page.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(str(page.relative_to(ROOT)))
    assert "actstore.store.repair_cache" in found  # the scan sees the docs' names
    assert not _resolves("actstore.store.no_such_function")
    missing = {n: sorted(p) for n, p in found.items() if not _resolves(n)}
    assert not missing, f"names in the docs that actstore does not have: {missing}"


@pytest.mark.parametrize(
    "package",
    [
        "actstore",
        "actstore.store",
        "actstore.extractors",
        "actstore.analysis",
        "actstore.prompts",
        "actstore.experiment",
        "actstore.torch",
        "actstore.tinymodels",
        "actstore.locations",
        "actstore.errors",
    ],
)
def test_api_pages_show_every_exported_name(package: str) -> None:
    """The API pages (mkdocstrings, which reads the source through griffe) render a name of
    ``__all__`` only when griffe finds its docstring: a ``#:`` comment is not one, so a constant
    documented that way was missing from its page."""
    griffe = pytest.importorskip("griffe")
    pkg = griffe.load(package, search_paths=[str(ROOT / "src")], resolve_aliases=True,
                      resolve_external=False)  # fmt: skip
    assert pkg.exports, f"{package} has no __all__"
    assert [n for n in pkg.exports if not pkg[n].docstring] == []
