"""One naming scheme for SQL, over the kernel's distribution (src/) and every module's
(modules/<m>/src): a package's migration files live in its ``migrations/`` package
(``migrations/platform/NNNN_name.sql``, ``migrations/tenant/NNNN_name.sql``), its named SQL
constants in its ``sql.py``; no directory named ``sql`` and no ``queries.py``; every source
the migrator reads (the kernel's, each installed module's ``Module.migrations``) is such a
``migrations`` package.

The rules are read from the tree (an ast scan), never from a list of expected files; the
only list is the exemptions below, each a file someone else is changing at the time the
rule was written.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tenantry.kernel.db.migrator import load_migrations
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import KERNEL_SOURCES

ROOT = Path(__file__).resolve().parents[2]
#: Migration scopes of kernel/db/migrator.py (``Scope``).
SCOPES = ("platform", "tenant")
#: An SQL statement or fragment in a string: the statement keywords, upper case as the
#: tree writes SQL (``SELECT``, ``INSERT INTO``, ``WITH x AS (...)``, ``CREATE ...``).
SQL_WORD = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE)\b")

#: Files allowed to keep module-level SQL outside a ``sql.py``, relative to the repository.
#: Each is a file another change owned when the rule came in; move its constants into the
#: package's ``sql.py`` and delete its line (test_exemptions_are_still_needed says when).
EXEMPT: dict[str, str] = {}


def source_roots() -> list[Path]:
    """src/ and every module distribution's src/ (modules/<m>/src)."""
    roots = [ROOT / "src", *sorted((ROOT / "modules").glob("*/src"))]
    assert len(roots) > 1, "no module distribution found under modules/*/src"
    return roots


def _files(pattern: str) -> Iterator[Path]:
    for root in source_roots():
        for path in sorted(root.rglob(pattern)):
            if "__pycache__" not in path.parts:
                yield path


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _text(node: ast.expr) -> str | None:
    """The text of a string literal or f-string (placeholders as ``{}``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
            for v in node.values
        )
    return None


def sql_bindings(source: str) -> list[tuple[int, str]]:
    """Module-level bindings whose value holds SQL: (line, name), any literal in the value
    counts (a constant, an f-string, a string passed to a call such as ``Source(...)``)."""
    found: list[tuple[int, str]] = []
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign | ast.AugAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        for node in ast.walk(value):
            text = _text(node) if isinstance(node, ast.expr) else None
            if text is not None and SQL_WORD.search(text):
                found.append((stmt.lineno, ", ".join(ast.unparse(t) for t in targets)))
                break
    return found


def _violations() -> dict[str, list[tuple[int, str]]]:
    out: dict[str, list[tuple[int, str]]] = {}
    for path in _files("*.py"):
        if path.name == "sql.py":
            continue
        hits = sql_bindings(path.read_text("utf-8"))
        if hits:
            out[_rel(path)] = hits
    return out


def test_no_directory_named_sql() -> None:
    bad = [_rel(p) for p in _files("*") if p.is_dir() and p.name == "sql"]
    assert not bad, f"migration folders are named migrations/, not sql/: {bad}"


def test_no_queries_module() -> None:
    bad = [_rel(p) for p in _files("queries.py")] + [
        _rel(p) for p in _files("*") if p.is_dir() and p.name == "queries"
    ]
    assert not bad, f"named SQL lives in the package's sql.py, not queries.py: {bad}"


def test_migration_files_live_in_a_migrations_package() -> None:
    files = list(_files("*.sql"))
    assert files, "no migration file found: the scan looks in the wrong place"
    bad = [
        _rel(p)
        for p in files
        if p.parent.name not in SCOPES
        or p.parent.parent.name != "migrations"
        or not (p.parent / "__init__.py").exists()
        or not (p.parent.parent / "__init__.py").exists()
    ]
    assert not bad, f"a migration is <package>/migrations/(platform|tenant)/NNNN_name.sql: {bad}"


def test_sql_constants_only_in_sql_py() -> None:
    bad = {path: hits for path, hits in _violations().items() if path not in EXEMPT}
    assert not bad, "module-level SQL outside a sql.py (move it to the package's sql.py): " + (
        "; ".join(f"{p}:{line} {name}" for p, hits in bad.items() for line, name in hits)
    )


def test_exemptions_are_still_needed() -> None:
    found = _violations()
    stale = [path for path in EXEMPT if path not in found]
    assert not stale, f"these files follow the rule now: delete them from EXEMPT: {stale}"


def test_the_scan_sees_the_sql_in_sql_modules() -> None:
    """The detector is not blind: every sql.py it spares holds SQL it recognizes."""
    modules = list(_files("sql.py"))
    assert modules
    blind = [_rel(p) for p in modules if not sql_bindings(p.read_text("utf-8"))]
    assert not blind, f"no SQL recognized in {blind}: the detector misses how SQL is written"


def test_every_migration_source_is_a_migrations_package() -> None:
    """What the migrator reads: the kernel's sources and every installed module's
    ``Module.migrations`` (entry points), each a package named ``migrations``."""
    sources = [(name, package) for name, package in KERNEL_SOURCES]
    sources += [(m.name, m.migrations) for m in discover() if m.migrations is not None]
    assert len(sources) > len(KERNEL_SOURCES)
    bad = [
        (name, package) for name, package in sources if package.rsplit(".", 1)[-1] != "migrations"
    ]
    assert not bad, f"a migration source is its package's migrations package: {bad}"
    for name, package in sources:
        assert load_migrations(name, package), f"{name}: no migration found in {package}"
