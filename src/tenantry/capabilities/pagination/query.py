"""One list request: filter + sort + limit + cursor, compiled to SQL and turned into a page.

    q = ListQuery.parse(USERS, signer, document=doc, sort="-created_at", limit=50, cursor=c)
    sql, args = q.render("SELECT ... FROM t JOIN u ON ...")     # appends WHERE/ORDER BY/LIMIT
    page = q.page(await uow.fetch(sql, *args), serialize)        # {"items", "next_cursor"}

or in one line ``await q.fetch_page(uow, SQL, serialize=...)``. Rows must carry each sort
field's value under its ``key`` (and the id under the id field's key) for the next cursor.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from tenantry.capabilities.filtering.compiler import Params, compile_node
from tenantry.capabilities.filtering.document import (
    DEFAULT_LIMITS,
    Limits,
    Node,
    canonical,
    fail,
    parse_filter,
    parse_sort,
)
from tenantry.capabilities.filtering.fields import FieldSet, SortKey
from tenantry.capabilities.filtering.types import to_json
from tenantry.capabilities.pagination.cursor import CursorSigner, invalid
from tenantry.capabilities.pagination.keyset import after, order_by

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
PLACEHOLDERS = ("{where}", "{order_by}", "{limit}")


class Fetcher(Protocol):
    """Anything with asyncpg's ``fetch`` (a ``UnitOfWork``, a connection)."""

    async def fetch(self, sql: str, *args: Any) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class CompiledList:
    where: str
    order_by: str
    #: Rows to fetch: the page size plus one (to know whether a next page exists).
    limit: int
    params: list[Any]


def _default_serialize(row: Any) -> Any:
    return dict(row)


class ListQuery:
    __slots__ = (
        "cursor_values",
        "fieldset",
        "filter",
        "fingerprint",
        "limit",
        "scope",
        "signer",
        "sort",
    )

    def __init__(
        self,
        fieldset: FieldSet,
        signer: CursorSigner,
        filter_: Node | None,
        sort: Sequence[SortKey],
        limit: int,
        scope: str,
        cursor_values: list[Any] | None = None,
    ) -> None:
        self.fieldset = fieldset
        self.signer = signer
        self.filter = filter_
        self.sort = tuple(sort)
        self.limit = limit
        self.scope = scope
        self.cursor_values = cursor_values
        digest = hashlib.sha256(
            orjson.dumps([canonical(filter_), [k.spec for k in self.sort]], default=str)
        ).digest()
        self.fingerprint = base64.urlsafe_b64encode(digest[:9]).decode()

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def parse(
        cls,
        fieldset: FieldSet,
        signer: CursorSigner,
        *,
        document: Any = None,
        sort: Any = None,
        limit: Any = DEFAULT_LIMIT,
        cursor: Any = None,
        scope: str = "",
        limits: Limits = DEFAULT_LIMITS,
    ) -> ListQuery:
        """Validate everything a client sent: 422 for filter/sort/limit, 400 for the cursor."""
        node = parse_filter(document, fieldset, limits)
        doc_sort = document.get("sort") if isinstance(document, dict) else None
        # the ``sort`` parameter, when given, wins over a sort inside the filter document
        keys = parse_sort(sort if sort is not None else doc_sort, fieldset, limits)
        if not keys:
            keys = parse_sort(fieldset.default_sort, fieldset, limits)
        if not any(k.field is fieldset.id for k in keys):
            keys.append(SortKey(fieldset.id, keys[-1].desc if keys else False))
        if isinstance(limit, float) and limit.is_integer():  # JSON Schema's integer 50.0
            limit = int(limit)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise fail("limit", f"limit is an integer from 1 to {MAX_LIMIT}")
        q = cls(fieldset, signer, node, keys, limit, f"{fieldset.name}|{scope}")
        if cursor is not None:
            if not isinstance(cursor, str):
                raise invalid("expected a string")
            q.cursor_values = q._decode(cursor)
        return q

    def _decode(self, cursor: str) -> list[Any]:
        data = self.signer.verify(self.scope, cursor)
        if data.get("q") != self.fingerprint:
            raise invalid("it belongs to another filter or sort; start again without a cursor")
        raw = data.get("k")
        if not isinstance(raw, list) or len(raw) != len(self.sort):
            raise invalid("malformed")
        values: list[Any] = []
        for k, v in zip(self.sort, raw, strict=True):
            if v is None:
                values.append(None)
                continue
            try:
                values.append(k.field.parse_stored(v))
            except ValueError:
                raise invalid("malformed") from None
        return values

    # -- SQL ---------------------------------------------------------------------------------
    def compile(self, offset: int = 0) -> CompiledList:
        """WHERE (filter AND after-cursor), ORDER BY, LIMIT and the params from ``$offset+1``."""
        params = Params(offset)
        parts: list[str] = []
        if self.filter is not None:
            parts.append(compile_node(self.filter, params))
        if self.cursor_values is not None:
            parts.append(after(self.sort, self.cursor_values, params))
        where = " AND ".join(parts) if parts else "TRUE"
        return CompiledList(where, order_by(self.sort), self.limit + 1, params.values)

    def render(self, sql: str, *params: Any) -> tuple[str, list[Any]]:
        """``sql`` with ``{where}``, ``{order_by}``, ``{limit}`` filled in (or, without
        them, `` WHERE ... ORDER BY ... LIMIT ...`` appended) and all the arguments."""
        c = self.compile(len(params))
        if "{where}" not in sql:
            sql = sql.rstrip() + "\nWHERE {where}\nORDER BY {order_by}\nLIMIT {limit}"
        for token, value in zip(PLACEHOLDERS, (c.where, c.order_by, str(c.limit)), strict=True):
            sql = sql.replace(token, value)
        return sql, [*params, *c.params]

    # -- results -----------------------------------------------------------------------------
    def next_cursor(self, rows: Sequence[Any]) -> str | None:
        if len(rows) <= self.limit:
            return None
        last = rows[self.limit - 1]
        try:
            values = [to_json(last[k.field.key]) for k in self.sort]
        except (KeyError, IndexError):
            missing = [k.field.key for k in self.sort]
            raise RuntimeError(
                f"list {self.fieldset.name}: rows must include the sort columns {missing}"
            ) from None
        return self.signer.sign(self.scope, {"q": self.fingerprint, "k": values})

    def page(
        self, rows: Sequence[Any], serialize: Callable[[Any], Any] = _default_serialize
    ) -> dict[str, Any]:
        """``{"items": [...], "next_cursor": ...}`` from the rows of ``render``'s SQL."""
        return {
            "items": [serialize(r) for r in rows[: self.limit]],
            "next_cursor": self.next_cursor(rows),
        }

    async def fetch_page(
        self,
        db: Fetcher,
        sql: str,
        *params: Any,
        serialize: Callable[[Any], Any] = _default_serialize,
    ) -> dict[str, Any]:
        text, args = self.render(sql, *params)
        return self.page(await db.fetch(text, *args), serialize)
