"""The statement rewrite of the tenant filter, with sqlglot (the rules: kernel/db/tenant_filter).

Its own module so that sqlglot is imported on the first cache miss, not by every process that
imports the unit of work (the CLI starts faster)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from tenantry.kernel.db.tenant_filter import TENANT_COLUMN, Rewritten, TenantFilterError

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


def rewrite(sql: str, tables: frozenset[str]) -> Rewritten:
    """``sql`` as the unit of work sends it for a tenant (uncached; ``TenantFilter`` caches)."""
    return _Rewrite(sql, tables).run()
