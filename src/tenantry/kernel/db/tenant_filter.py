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
schemas, as ``kernel/db/sql.TENANT_TABLES_SQL`` finds them (the same definition RLS uses).
The set is loaded once per process from the main database's catalog, on the first tenant
unit of work (``Database``), and reloaded after migrations run in the process; matching is
by table name, whatever schema qualifies it (a tenant store's tables have the same names in
every store). A table created by another process after the load is not filtered until the
next start (RLS still is: the start-up self-check refuses a tenant table without policies).

**Cost**: the rewrite (sqlglot parse and generation, milliseconds) happens once per SQL
text; afterwards ``rewrite`` is one dict lookup and the unit of work's statement step a
fraction of a microsecond, beside a round trip of tens of microseconds
(``bench/tenant_filter.py`` prints them; docs/performance.md, "Tenant filter"). The added
predicate is on the leading column of
every tenant table's keys and indexes, which RLS adds anyway: PostgreSQL plans it as one more
index condition (docs/architecture.md).

Why sqlglot: a maintained SQL parser with a PostgreSQL dialect and a mutable tree; a
hand-written rewrite would have to understand CTEs, joins and subqueries just as well.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

TENANT_COLUMN = "tenant_id"

#: At most this many distinct SQL texts are kept (dynamic SQL, e.g. list filters, varies).
CACHE_SIZE = 4096


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
        from tenantry.kernel.db.tenant_rewrite import rewrite  # sqlglot: only on a miss

        done = rewrite(sql, self.tables)
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
