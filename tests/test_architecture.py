"""The package's shape, read from the source with ``ast`` (nothing is imported):

- the flow (sources -> indexing -> retrieval) never reaches for a storage engine;
- only indexer/store/registry.py picks an engine: nothing else outside
  indexer/store/sqlite/ and indexer/store/postgres/ imports one;
- the neutral store modules import no engine library;
- no import cycle among indexer's modules;
- indexer/ itself stays small (at most 12 top-level modules and packages).

Every import statement counts: absolute and relative, at module level or inside a
function (lazy), or under ``if TYPE_CHECKING:``. ``from pkg import name`` is an
import of the module ``pkg.name`` when there is one, else of ``pkg``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "indexer"

ENGINES = ("indexer.store.sqlite", "indexer.store.postgres")
ENGINE_LIBRARIES = frozenset({"apsw", "sqlite_vec", "psycopg"})
ENGINE_FREE = ("indexer.retrieval", "indexer.indexing", "indexer.sources")
REGISTRY = "indexer.store.registry"
NEUTRAL_STORE = ("indexer.store.protocols", "indexer.store.records", "indexer.store.tokenizer")
# The one allowed exception: indexer/store/tokenizer.py (when it exists) wraps apsw's
# FTS5 tokenizer, the single text tokenizer both engines share (SQLite's chunks_fts
# and PostgreSQL's stems), so it may import apsw -- and nothing else from an engine.
LIBRARIES_ALLOWED = {"indexer.store.tokenizer": frozenset({"apsw"})}
MAX_TOP_LEVEL = 12


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_modules() -> dict[str, tuple[Path, ast.Module]]:
    return {
        module_name(path): (path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


MODULES = read_modules()


def is_package(name: str) -> bool:
    return MODULES[name][0].name == "__init__.py"


def known(name: str) -> str:
    """The longest prefix of ``name`` that is one of indexer's modules (``indexer.x.attr`` -> ``indexer.x``)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports(name: str) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in module ``name``: indexer modules by
    their full name, third-party ones by their top-level name."""
    path, tree = MODULES[name]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                yield (known(target) if target.split(".")[0] == "indexer" else target.split(".")[0]), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name if is_package(name) else name.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    package = package.rsplit(".", 1)[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            if base.split(".")[0] != "indexer":
                yield base.split(".")[0], node.lineno
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in MODULES else known(base)), node.lineno


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def where(name: str, line: int) -> str:
    return f"{MODULES[name][0].relative_to(PACKAGE.parent)}:{line}"


def violations(found: Iterator[tuple[str, str, int]]) -> str:
    """One line per offending import (empty if none)."""
    return "".join(f"\n  {where(name, line)} imports {target}" for name, target, line in sorted(set(found), key=lambda f: (f[0], f[2], f[1])))


def test_the_flow_never_imports_a_storage_engine() -> None:
    found = violations(
        (name, target, line)
        for name in MODULES
        if any(within(name, part) for part in ENGINE_FREE)
        for target, line in imports(name)
        if target in ENGINE_LIBRARIES or any(within(target, engine) for engine in ENGINES)
    )
    assert not found, "sources/indexing/retrieval must reach storage only through the store protocols:" + found


def test_only_the_registry_imports_an_engine() -> None:
    found = violations(
        (name, target, line)
        for name in MODULES
        if name != REGISTRY and not any(within(name, engine) for engine in ENGINES)
        for target, line in imports(name)
        if any(within(target, engine) for engine in ENGINES)
    )
    assert not found, f"only {REGISTRY} may import indexer.store.sqlite / indexer.store.postgres:" + found


def test_the_neutral_store_modules_import_no_engine_library() -> None:
    found = violations(
        (name, target, line)
        for name in NEUTRAL_STORE
        if name in MODULES
        for target, line in imports(name)
        if target in ENGINE_LIBRARIES - LIBRARIES_ALLOWED.get(name, frozenset())
        or any(within(target, engine) for engine in ENGINES)
    )
    assert not found, "the neutral store modules are shared by both engines, so import no engine:" + found


def test_psycopg_is_imported_only_by_the_postgres_connection_and_only_when_used() -> None:
    """psycopg is an extra (``memdex[postgres]``): every module of a wheel installed without it
    must import (CI's wheel check), so only store/postgres/connection.py names it, in a function."""
    found = []
    for name, (path, tree) in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                targets = [node.module or ""]
            else:
                continue
            if any(t == "psycopg" or t.startswith("psycopg.") for t in targets):
                at_top = node in tree.body
                if name != "indexer.store.postgres.connection" or at_top:
                    found.append(f"\n  {path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, "psycopg imported outside a function of store/postgres/connection.py:" + "".join(found)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def test_no_import_cycle() -> None:
    edges: dict[str, dict[str, int]] = {name: {} for name in MODULES}
    for name in MODULES:
        for target, line in imports(name):
            if target in MODULES and target != name:
                edges[name].setdefault(target, line)
    cycles = strongly_connected({name: set(targets) for name, targets in edges.items()})
    described = [
        "; ".join(
            f"{where(a, edges[a][b])} imports {b}" for a in cycle for b in sorted(edges[a]) if b in cycle
        )
        for cycle in cycles
    ]
    assert not described, "import cycles among indexer's modules:" + "".join(f"\n  {d}" for d in described)


def test_the_top_level_stays_small() -> None:
    """Modules and packages directly in indexer/ (``__init__`` and ``__main__`` are the
    package itself and its entry point, not counted)."""
    top = sorted(
        entry.stem if entry.is_file() else entry.name
        for entry in PACKAGE.iterdir()
        if (entry.is_file() and entry.suffix == ".py" and entry.stem not in ("__init__", "__main__"))
        or (entry.is_dir() and entry.name != "__pycache__" and any(entry.rglob("*.py")))
    )
    assert len(top) <= MAX_TOP_LEVEL, f"{len(top)} top-level modules/packages in indexer/: {top}"
