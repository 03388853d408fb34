"""The application tenant filter: the first of the two isolation layers (RLS is the second).

Every statement a tenant unit of work runs goes through ``TenantFilter.rewrite``, which adds
``<alias or table>.tenant_id = $N`` for every reference to a tenant-owned table, where ``$N``
is a new bound parameter, one past the highest placeholder of the statement, that the unit
of work fills with its tenant's id. The filter never reads ``app.tenant_id`` (the setting RLS
reads), so each layer alone stops a cross-tenant statement: a statement that forgets its
tenant, a bug in the rewrite or a missing policy needs the other layer to fail too.

Where the condition goes, for each reference to a tenant-owned table:

- SELECT (and every subquery and CTE): a table in FROM or an inner/comma JOIN gets it in the
  WHERE of its own SELECT; the inner side of a LEFT JOIN gets it in that join's ON (in the
  WHERE it would turn the outer join into an inner one). RIGHT and FULL joins of a tenant
  table, and LEFT JOIN ... USING, are refused (no statement of the platform needs them).
- UPDATE and DELETE: the target and every table of UPDATE ... FROM / DELETE ... USING, in the
  WHERE.
- INSERT: the unit of work owns ``tenant_id``. A column list without it gets it, with ``$N``
  appended to every VALUES row or to the projection of every SELECT of the source (the SELECT
  is itself filtered like any other). An INSERT without a column list is refused (the filter
  cannot know where tenant_id goes). ``ON CONFLICT ... DO UPDATE`` gets the condition in its
  WHERE, so a conflict with another tenant's row updates nothing.
- A value a statement writes to ``tenant_id`` itself (an INSERT column list that names it,
  ``SET tenant_id = ...``; kernel SQL that predates the filter does so) is wrapped as
  ``CASE WHEN <value> = $N THEN $N END``: the current tenant's id stays, any other becomes
  NULL, which every tenant_id column refuses (NOT NULL: checked by the isolation suite), so
  a row can neither be written as nor moved to another tenant.

``EXPLAIN [options] <statement>`` has its statement rewritten. A statement with no
tenant-owned table is returned unchanged (its text, not a regenerated one). A statement the
filter cannot read (a parse error, a statement other than SELECT/INSERT/UPDATE/DELETE, e.g.
MERGE, TRUNCATE or one sqlglot keeps opaque, that names a tenant table, a tenant table in a
position listed above as refused or not listed at all, several statements in one text)
raises ``TenantFilterError``
naming the statement, at its first use; ``tests/isolation/test_tenant_filter_sources.py`` runs
every SQL text of ``src/`` through the filter so none of them fails first in production.

**Which tables are tenant-owned**: the tables with a ``tenant_id`` column in the managed
schemas, as ``kernel/db/rls.TENANT_TABLES_SQL`` finds them (the same definition RLS uses).
The set is loaded once per process from the main database's catalog, on the first tenant
unit of work (``Database``), and reloaded after migrations run in the process; matching is
by table name, whatever schema qualifies it (a tenant store's tables have the same names in
every store). A table created by another process after the load is not filtered until the
next start (RLS still is: the start-up self-check refuses a tenant table without policies).

**Cost**: the rewrite (sqlglot parse and generation: about 1 ms for a one-table SELECT, 5-10
ms for the ledger's write CTE) happens once per SQL text; afterwards ``rewrite`` is one dict
lookup (~60 ns) and the unit of work's statement step ~0.2 µs, beside a ~85 µs round trip
(``bench/tenant_filter.py`` prints them). The added predicate is on the leading column of
every tenant table's keys and indexes, which RLS adds anyway: PostgreSQL plans it as one more
index condition (docs/architecture.md).

Why sqlglot: a maintained SQL parser with a PostgreSQL dialect and a mutable tree; a
hand-written rewrite would have to understand CTEs, joins and subqueries just as well.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

TENANT_COLUMN = "tenant_id"

#: At most this many distinct SQL texts are kept (dynamic SQL, e.g. list filters, varies).
CACHE_SIZE = 4096

# Strings, quoted identifiers, comments and dollar-quoted strings (skipped), and placeholders.
_LEXEMES = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/"""
    r"""|\$(?P<tag>(?:[A-Za-z_][A-Za-z_0-9]*)?)\$.*?\$(?P=tag)\$|\$(?P<n>\d+)""",
    re.S,
)
_EXPLAIN = re.compile(r"\s*EXPLAIN(?:\s*\([^)]*\)|\s+(?:ANALYZE|VERBOSE)\b)*(?=\s)", re.IGNORECASE)
_WORDS = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z_0-9$]*)')

# sqlglot says so on stderr when it falls back to an opaque Command; we handle that case.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


#: Statements whose table references the rewrite understands; any other statement (an opaque
#: command, MERGE, TRUNCATE, ...) that names a tenant table is refused.
_READABLE = (exp.Query, exp.Insert, exp.Update, exp.Delete)


class TenantFilterError(Exception):
    """A SQL text the tenant filter cannot rewrite safely."""

    def __init__(self, reason: str, sql: str) -> None:
        one_line = " ".join(sql.split())
        super().__init__(f"tenant filter: {reason}: {one_line[:300]}")
        self.reason = reason
        self.sql = sql


@dataclass(frozen=True, slots=True)
class Rewritten:
    """A statement as the unit of work runs it."""

    sql: str
    #: Whether the tenant id must be appended to the arguments (as ``$N``, N = their count
    #: plus one). False: the statement touches no tenant-owned table, ``sql`` is the input.
    needs_tenant: bool


def _placeholders(sql: str) -> tuple[str, int]:
    """``sql`` with a space after every ``$n`` outside strings and comments (sqlglot reads
    ``$1,$2`` as the start of a dollar-quoted string), and the highest ``n``."""
    highest = 0
    out: list[str] = []
    last = 0
    for m in _LEXEMES.finditer(sql):
        n = m.group("n")
        if n is None:
            continue
        highest = max(highest, int(n))
        out.append(sql[last : m.end()])
        out.append(" ")
        last = m.end()
    out.append(sql[last:])
    return "".join(out), highest


def _identifier_words(sql: str) -> set[str]:
    """Every word of ``sql`` that could name a table (lower case unless quoted)."""
    words: set[str] = set()
    for m in _WORDS.finditer(_LEXEMES.sub(" ", sql)):
        quoted, bare = m.group(1), m.group(2)
        words.add(quoted.replace('""', '"') if quoted is not None else bare.lower())
    return words


def _name(ident: exp.Expr | None) -> str | None:
    """The name an identifier denotes (PostgreSQL folds unquoted names to lower case)."""
    if not isinstance(ident, exp.Identifier):
        return None
    name = str(ident.this)
    return name if ident.quoted else name.lower()


def _and(where: exp.Where | None, conds: list[exp.Expr]) -> exp.Where:
    """``where`` AND every condition (the existing one parenthesized)."""
    if where is not None:
        conds = [exp.paren(where.this, copy=False), *conds]
    return exp.Where(this=exp.and_(*conds, copy=False))


class _Rewrite:
    """One statement's rewrite (see the module doc for the rules)."""

    def __init__(self, sql: str, tables: frozenset[str]) -> None:
        self.sql = sql
        self.tables = tables
        self.ctes: set[str] = set()
        self.param: exp.Expr = exp.null()

    def fail(self, reason: str) -> TenantFilterError:
        return TenantFilterError(reason, self.sql)

    def run(self) -> Rewritten:
        explain = _EXPLAIN.match(self.sql)
        if explain:  # sqlglot keeps EXPLAIN opaque: rewrite the statement explained
            inner = _Rewrite(self.sql[explain.end() :], self.tables).run()
            if not inner.needs_tenant:
                return Rewritten(self.sql, False)
            return Rewritten(self.sql[: explain.end()] + " " + inner.sql, True)
        spaced, highest = _placeholders(self.sql)
        try:
            statements = [s for s in sqlglot.parse(spaced, read="postgres") if s is not None]
        except SqlglotError as exc:
            raise self.fail(f"cannot parse ({str(exc).splitlines()[0]})") from None
        touched = [s for s in statements if self._touches(s)]
        if not touched:
            return Rewritten(self.sql, False)
        if len(statements) != 1:
            raise self.fail("several statements in one text touch tenant tables")
        (stmt,) = statements
        self.param = exp.cast(
            exp.Parameter(this=exp.Literal.number(highest + 1)), exp.DataType.build("uuid")
        )
        self._rewrite(stmt)
        return Rewritten(stmt.sql(dialect="postgres"), True)

    # -- which references --------------------------------------------------------------------
    def _touches(self, stmt: exp.Expr) -> bool:
        if not isinstance(stmt, _READABLE):
            if _identifier_words(self.sql) & self.tables:
                raise self.fail("a statement the filter cannot read names a tenant table")
            return False
        self.ctes = {
            n for cte in stmt.find_all(exp.CTE) if (n := _name(cte.args["alias"].this)) is not None
        }
        if self.ctes & self.tables:
            raise self.fail("a CTE is named like a tenant table")
        return any(self._is_tenant(t) for t in stmt.find_all(exp.Table))

    def _is_tenant(self, table: exp.Table) -> bool:
        name = _name(table.this)
        if name is None or name not in self.tables:
            return False
        return bool(table.args.get("db")) or name not in self.ctes

    def _column(self, table: exp.Table) -> exp.Column:
        """``<alias or table>.tenant_id`` for a reference to ``table``."""
        alias = table.args.get("alias")
        if isinstance(alias, exp.TableAlias) and isinstance(alias.this, exp.Identifier):
            return exp.Column(this=exp.to_identifier(TENANT_COLUMN), table=alias.this.copy())
        return exp.Column(
            this=exp.to_identifier(TENANT_COLUMN),
            table=table.this.copy(),
            db=table.args["db"].copy() if table.args.get("db") else None,
        )

    def _cond(self, table: exp.Table) -> exp.Expr:
        return exp.EQ(this=self._column(table), expression=self.param.copy())

    # -- where the conditions go ---------------------------------------------------------------
    def _rewrite(self, stmt: exp.Expr) -> None:
        tables = [
            t
            for t in stmt.find_all(exp.Table)
            if self._is_tenant(t) and not isinstance(t.parent, exp.Lock)  # FOR UPDATE OF t
        ]
        where: dict[int, tuple[exp.Expr, list[exp.Expr]]] = {}
        for table in tables:
            parent, key = table.parent, table.arg_key
            owner: exp.Expr
            if isinstance(parent, exp.From) and isinstance(parent.parent, exp.Select | exp.Update):
                owner = parent.parent
                self._check_join(owner)
            elif isinstance(parent, exp.Join) and isinstance(parent.parent, exp.Select):
                owner = parent.parent
                self._check_join(owner)
                if parent.side == "LEFT":
                    if parent.args.get("using"):
                        raise self.fail("LEFT JOIN ... USING a tenant table")
                    on = parent.args.get("on")
                    cond = self._cond(table)
                    parent.set("on", exp.and_(exp.paren(on), cond) if on is not None else cond)
                    continue
            elif isinstance(parent, exp.Update | exp.Delete) and key in ("this", "using"):
                owner = parent
                if isinstance(parent, exp.Update) and key == "this":
                    self._guard_assignments(parent.expressions)
            elif isinstance(parent, exp.Schema) and isinstance(parent.parent, exp.Insert):
                self._insert(parent.parent, table)
                continue
            elif isinstance(parent, exp.Insert) and key == "this":
                raise self.fail("INSERT into a tenant table without a column list")
            else:
                raise self.fail(
                    f"tenant table {table.name!r} in a position the filter does not handle"
                    f" ({type(parent).__name__})"
                )
            where.setdefault(id(owner), (owner, []))[1].append(self._cond(table))
        for owner, conds in where.values():
            owner.set("where", _and(owner.args.get("where"), conds))

    def _check_join(self, select: exp.Expr) -> None:
        for join in select.args.get("joins") or []:
            if join.side in ("RIGHT", "FULL"):
                raise self.fail(f"{join.side} JOIN in a select of a tenant table")

    def _guarded(self, value: exp.Expr) -> exp.Expr:
        """``CASE WHEN value = $N THEN $N END``: a tenant_id a statement writes itself must
        be the current tenant's; any other value becomes NULL, which every tenant_id column
        refuses (NOT NULL, checked by the isolation suite), so the statement fails."""
        return exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(this=value.copy(), expression=self.param.copy()),
                    true=self.param.copy(),
                )
            ]
        )

    def _guard_assignments(self, assignments: Iterable[exp.Expr]) -> None:
        for eq in assignments:
            target = eq.this if isinstance(eq, exp.EQ) else None
            if isinstance(target, exp.Column) and _name(target.this) == TENANT_COLUMN:
                eq.set("expression", self._guarded(eq.expression))

    def _insert(self, insert: exp.Insert, table: exp.Table) -> None:
        schema = insert.this
        assert isinstance(schema, exp.Schema)
        columns = [_name(c) for c in schema.expressions]
        source = insert.expression
        if not isinstance(source, exp.Values | exp.Query):
            raise self.fail("INSERT into a tenant table without VALUES or SELECT")
        if TENANT_COLUMN in columns:
            position: int | None = columns.index(TENANT_COLUMN)
        else:
            position = None
            schema.append("expressions", exp.to_identifier(TENANT_COLUMN))
        for row in self._source_rows(source):
            if position is None:
                row.append("expressions", self.param.copy())
            elif position < len(row.expressions):
                value = row.expressions[position]
                if isinstance(value, exp.Star):
                    raise self.fail("INSERT ... SELECT * naming tenant_id")
                if isinstance(value, exp.Alias):
                    value = value.this
                value.replace(self._guarded(value))
            else:
                raise self.fail("INSERT whose source has fewer values than columns")
        conflict = insert.args.get("conflict")
        if conflict is not None and "UPDATE" in str(conflict.args.get("action", "")).upper():
            self._guard_assignments(conflict.expressions)
            conflict.set("where", _and(conflict.args.get("where"), [self._cond(table)]))

    def _source_rows(self, source: exp.Expr) -> list[exp.Expr]:
        """The VALUES tuples or the SELECTs (every branch of a set operation) of a source."""
        if isinstance(source, exp.Values):
            rows = list(source.expressions)
            if not all(isinstance(r, exp.Tuple) for r in rows):
                raise self.fail("INSERT ... VALUES the filter cannot read")
            return rows
        if isinstance(source, exp.Subquery):
            return self._source_rows(source.this)
        if isinstance(source, exp.SetOperation):
            return self._source_rows(source.this) + self._source_rows(source.expression)
        if isinstance(source, exp.Select):
            return [source]
        raise self.fail(f"INSERT source {type(source).__name__} the filter cannot read")


class TenantFilter:
    """The rewrite of one set of tenant-owned table names, cached per SQL text."""

    def __init__(self, tables: Iterable[str] = ()) -> None:
        self.tables = frozenset(tables)
        self._cache: dict[str, Rewritten] = {}
        self._lock = threading.Lock()

    def rewrite(self, sql: str) -> Rewritten:
        hit = self._cache.get(sql)
        if hit is not None:
            return hit
        done = _Rewrite(sql, self.tables).run()
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[sql] = done
        return done


class _State:
    """The process's filter and the test-only switch (module doc)."""

    def __init__(self) -> None:
        self.filter: TenantFilter | None = None
        self.enabled = True


_state = _State()


def current() -> TenantFilter | None:
    """The process's filter, None while the table set is not loaded."""
    return _state.filter


def active() -> bool:
    """False only inside ``switched_off()`` (tests)."""
    return _state.enabled


def install(tables: Iterable[str]) -> TenantFilter:
    """Make ``tables`` the process's tenant-owned tables (an empty rewrite cache)."""
    _state.filter = TenantFilter(tables)
    return _state.filter


def forget() -> None:
    """Drop the loaded set: the next tenant unit of work loads it again (after migrations)."""
    _state.filter = None


@contextlib.contextmanager
def switched_off() -> Iterator[None]:
    """**Tests only**: units of work run their SQL unfiltered inside this block, so a test
    can show that RLS alone isolates tenants. Not a setting: no deployment can turn the
    filter off by configuration."""
    before = _state.enabled
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = before
