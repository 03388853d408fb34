"""A real table of varied rows (NULLs in every nullable column) for the filtering and
pagination tests, a field set over it, and a Python reference evaluation of filter documents
that shares no code with the engine."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cmp_to_key
from typing import Any

import asyncpg
import pytest

from tenantry.capabilities.filtering import FieldSet, fields
from tenantry.capabilities.filtering.fields import ALL_OPS
from tenantry.capabilities.pagination import CursorSigner
from tenantry.kernel.db.privileged import admin_connection
from tenantry.kernel.platform import Platform

SCHEMA = "filtering_test"
TEXT_ALPHABET = "aB%_\\ "
REFS = [uuid.UUID(int=i) for i in (1, 2, 3)]
STATUSES = ["new", "open", "closed"]
BASE_DAY = date(2026, 1, 1)
BASE_AT = datetime(2026, 1, 1, tzinfo=UTC)

ITEMS = FieldSet(
    "test.items",
    id=fields.uuid("id", "i.id", sortable=True),
    fields=[
        fields.text("name", 'i.name COLLATE "C"', ops=ALL_OPS, sortable=True, nullable=True),
        fields.integer("qty", "i.qty", sortable=True, nullable=True),
        fields.bigint("big", "i.big", sortable=True),
        fields.numeric("price", "i.price", sortable=True, nullable=True),
        fields.boolean("flag", "i.flag", sortable=True, nullable=True),
        fields.uuid("ref", "i.ref", nullable=True),
        fields.date("day", "i.day", sortable=True, nullable=True),
        fields.datetime("at", "i.at", sortable=True),
        fields.enum("status", "i.status", STATUSES, sortable=True, nullable=True),
        fields.json_text("meta.color", "i.meta", "color", key="color", sortable=True),
    ],
    default_sort="-at",
)
SELECT_ITEMS = f"""
SELECT i.id, i.name, i.qty, i.big, i.price, i.flag, i.ref, i.day, i.at, i.status,
       i.meta->>'color' AS color
FROM {SCHEMA}.items i
"""


def make_rows(n: int, seed: int = 5) -> list[dict[str, Any]]:
    rnd = random.Random(seed)

    def maybe(value: Any) -> Any:
        return None if rnd.random() < 0.2 else value

    def word() -> str:
        return "".join(rnd.choice(TEXT_ALPHABET) for _ in range(rnd.randint(0, 4)))

    rows = []
    for _ in range(n):
        color = rnd.choice([None, "red", "Blue", word()])
        rows.append(
            {
                "id": uuid.UUID(int=rnd.getrandbits(128)),
                "name": maybe(word()),
                "qty": maybe(rnd.randint(-5, 5)),
                "big": rnd.choice([rnd.randint(-(2**63), 2**63 - 1), rnd.randint(-3, 3)]),
                "price": maybe(Decimal(rnd.randint(-1000, 1000)) / 100),
                "flag": maybe(rnd.random() < 0.5),
                "ref": maybe(rnd.choice(REFS)),
                "day": maybe(BASE_DAY + timedelta(days=rnd.randint(-5, 5))),
                # few distinct instants, so sorts have ties the id must break
                "at": BASE_AT
                + timedelta(hours=rnd.randint(-4, 4), microseconds=rnd.choice([0, 7])),
                "status": maybe(rnd.choice(STATUSES)),
                "meta": rnd.choice([None, {}, {"color": color}]),
            }
        )
    for r in rows:
        meta = r["meta"]
        r["color"] = meta.get("color") if isinstance(meta, dict) else None
    return rows


INSERT = f"""
INSERT INTO {SCHEMA}.items (id, name, qty, big, price, flag, ref, day, at, status, meta)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""


def row_args(r: dict[str, Any]) -> tuple[Any, ...]:
    cols = ("id", "name", "qty", "big", "price", "flag", "ref", "day", "at", "status", "meta")
    return tuple(r[c] for c in cols)


@pytest.fixture(scope="module")
async def items_db(platform: Platform) -> AsyncIterator[tuple[asyncpg.Connection, list[Any]]]:
    """(owner connection, rows) for table filtering_test.items, 120 rows."""
    rows = make_rows(120)
    async with admin_connection(platform.db) as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        await conn.execute(
            f"""CREATE TABLE {SCHEMA}.items (
                id uuid PRIMARY KEY, name text, qty int, big bigint, price numeric(12, 2),
                flag bool, ref uuid, day date, at timestamptz NOT NULL, status text,
                meta jsonb)"""
        )
        await conn.executemany(INSERT, [row_args(r) for r in rows])
        yield conn, rows
        await conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


@pytest.fixture(scope="session")
def signer() -> CursorSigner:
    return CursorSigner(b"test-cursor-key-" * 2)


# -- reference evaluation (independent of the engine) ---------------------------------------
_CONVERT: dict[str, Any] = {
    "qty": int,
    "big": int,
    "price": lambda v: Decimal(str(v)),
    "flag": lambda v: v if isinstance(v, bool) else v == "true",
    "ref": uuid.UUID,
    "day": date.fromisoformat,
    "at": lambda v: d if (d := datetime.fromisoformat(v)).tzinfo else d.replace(tzinfo=UTC),
}
_KEYS = {"meta.color": "color"}


def _conv(field: str, v: Any) -> Any:
    return _CONVERT.get(field, lambda x: x)(v)


def _like(op: str, pattern: str, v: str) -> bool:
    if op == "contains":
        return pattern in v
    if op == "icontains":
        return pattern.lower() in v.lower()
    return v.startswith(pattern)


def evaluate(node: dict[str, Any], row: dict[str, Any]) -> bool:
    """Two-valued reference semantics of one document node on one row."""
    if "and" in node:
        return all(evaluate(n, row) for n in node["and"])
    if "or" in node:
        return any(evaluate(n, row) for n in node["or"])
    if "not" in node:
        return not evaluate(node["not"], row)
    name, op, value = node["field"], node["op"], node.get("value", True)
    v = row[_KEYS.get(name, name)]
    if op == "is_null":
        return bool((v is None) == value)
    if v is None:
        return op in ("ne", "nin")
    if op in ("in", "nin"):
        inside = v in [_conv(name, x) for x in value]
        return inside if op == "in" else not inside
    if op == "between":
        return bool(_conv(name, value[0]) <= v <= _conv(name, value[1]))
    if op in ("contains", "icontains", "startswith"):
        return _like(op, value, v)
    x = _conv(name, value)
    return bool(
        {
            "eq": v == x,
            "ne": v != x,
            "gt": v > x,
            "gte": v >= x,
            "lt": v < x,
            "lte": v <= x,
        }[op]
    )


def matches(doc: dict[str, Any], row: dict[str, Any]) -> bool:
    return all(evaluate(n, row) for n in doc.get("filters", []))


def reference_order(rows: list[dict[str, Any]], sort: list[tuple[str, bool]]) -> list[Any]:
    """Ids in the engine's order: NULL above every value; the id breaks ties in the
    direction of the last key."""
    keys = [(_KEYS.get(f, f), desc) for f, desc in sort]
    if not any(k == "id" for k, _ in keys):
        keys.append(("id", keys[-1][1] if keys else False))

    def cmp(a: dict[str, Any], b: dict[str, Any]) -> int:
        for k, desc in keys:
            x, y = a[k], b[k]
            if x == y:
                continue
            if x is None:
                c = 1
            elif y is None:
                c = -1
            else:
                c = 1 if x > y else -1
            return -c if desc else c
        return 0

    return [r["id"] for r in sorted(rows, key=cmp_to_key(cmp))]


_TOKEN = re.compile(
    r"\s+|\(|\)|,|<>|<=|>=|=|<|>"
    r"|\$\d+::(text|int4|int8|numeric|bool|uuid|date|timestamptz)(\[\])?"
    r"|AND|OR|NOT|IS|NULLS|NULL|DISTINCT|FROM|ANY|ALL|BETWEEN|LIKE|ILIKE|TRUE|FALSE"
    r"|ASC|DESC|LAST|FIRST"
)


def only_whitelisted_sql(sql: str) -> bool:
    """Nothing but declared expressions, keywords, operators and typed $n placeholders."""
    for f in sorted(ITEMS.by_name.values(), key=lambda f: -len(f.sql)):
        sql = sql.replace(f.sql, " ")
    pos = 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if m is None:
            return False
        pos = m.end()
    return True
