"""The package's shape: no import cycles, no oversized modules, SQL only in the storage
modules, and a wheel list that names every package folder."""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "crt_loops"
MAX_MODULE_LINES = 600
# Where SQL may be written: the session DB's storage package and the Ledger's storage modules.
SQL_HOMES = (
    "crt_loops/db/",
    "crt_loops/ledger/store.py",
    "crt_loops/ledger/schema.py",
    "crt_loops/ledger/pg_schema.py",
    "crt_loops/ledger/storage/",
)
# Modules that still hold SQL of their own; each is to move into a storage module.
SQL_NOT_YET_MOVED: set[str] = set()
# Packages that may talk to the driver: the session DB's storage package and the Ledger's own.
DRIVER_HOMES = ("crt_loops/db/", "crt_loops/ledger/")
# A session DB's raw connections and queries, which only its repositories use.
RAW_DB_METHODS = {"read", "write", "snapshot", "conn", "query", "query_one"}
SQL_RE = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"CREATE\s+(TABLE|INDEX|VIRTUAL))\b",
    re.IGNORECASE | re.DOTALL,
)


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _type_checking_block(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )


def runtime_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of the package that ``name`` imports at run time, function-local ones included
    (an import inside ``if TYPE_CHECKING:`` runs only for the type checker)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if _type_checking_block(node):
            skip.update(id(n) for n in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known and m != name}


def test_the_package_has_no_import_cycles() -> None:
    paths = dict(modules())
    known = set(paths)
    graph = {name: runtime_imports(name, path, known) for name, path in paths.items()}
    # A package's __init__ importing its own submodules is not a cycle through the package.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_no_product_module_is_over_600_lines() -> None:
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text(encoding="utf-8").splitlines())
        for _, path in modules()
    }
    assert {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def _holds_sql(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_RE.search(node.value)
        for node in ast.walk(tree)
    )


def test_sql_lives_only_in_the_storage_modules() -> None:
    holders = {
        str(path.relative_to(SRC))
        for _, path in modules()
        if not str(path.relative_to(SRC)).startswith(SQL_HOMES) and _holds_sql(path)
    }
    assert holders - SQL_NOT_YET_MOVED == set(), "SQL outside the storage modules"
    assert SQL_NOT_YET_MOVED - holders == set(), "moved: drop it from SQL_NOT_YET_MOVED"


def test_the_wheel_lists_every_package_folder() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(d.relative_to(SRC).parts)
        for d in PACKAGE.rglob("*")
        if d.is_dir() and d.name != "__pycache__" and any(f.is_file() for f in d.iterdir())
    } | {"crt_loops"}
    assert listed == folders | {"heartbeat"}


def _raw_db_calls(tree: ast.AST) -> list[str]:
    """``db.write()``, ``self.db.read()`` and the like: a session DB used as a connection."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = node.func.value
        named_db = (isinstance(receiver, ast.Name) and receiver.id == "db") or (
            isinstance(receiver, ast.Attribute) and receiver.attr == "db"
        )
        if named_db and node.func.attr in RAW_DB_METHODS:
            found.append(f"line {node.lineno}: db.{node.func.attr}()")
    return found


def test_only_the_storage_packages_use_the_driver_or_raw_connections() -> None:
    offenders: dict[str, list[str]] = {}
    for _, path in modules():
        rel = str(path.relative_to(SRC))
        if rel.startswith(DRIVER_HOMES):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = [
            f"line {node.lineno}: imports sqlite3"
            for node in ast.walk(tree)
            if (isinstance(node, ast.Import) and any(a.name == "sqlite3" for a in node.names))
            or (isinstance(node, ast.ImportFrom) and node.module == "sqlite3")
        ] + _raw_db_calls(tree)
        if found:
            offenders[rel] = found
    assert offenders == {}


# Documents a reader of this repository does not have; the repository's own are under docs/.
OUTSIDE_CITATION_RE = re.compile(r"\b(DESIGN|REFERENCE) §|\b[Ii]ssue \d+|shared/[A-Z]+\.md")


def test_comments_cite_only_the_repository() -> None:
    sources = [path for _, path in modules()] + sorted((ROOT / "tests").rglob("*.py"))
    sources += sorted((ROOT / "bench").glob("*.py")) + sorted(ROOT.glob("*.py"))
    offending = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE_CITATION_RE.search(line) and "OUTSIDE_CITATION_RE" not in line
    ]
    assert offending == []
    for cited in ("architecture.md", "reference.md", "storage.md", "seed.md"):
        assert (ROOT / "docs" / cited).is_file()
