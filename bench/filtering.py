"""Filter compile time for a 20-condition document, with baselines from the same run.

    .venv/bin/python bench/filtering.py [--iterations N]

Rows (p50 / p99 per document, microseconds):
- ``json parse only``: orjson.loads of the document (the floor any engine pays);
- ``hand-written SQL build``: json parse + the same WHERE text built by hand with no
  validation (what a route would do ad hoc);
- ``filter engine``: json parse + validate + type-parse every value + compile to SQL;
- ``engine + list query``: the full ``ListQuery.parse`` + ``render`` (sort, limit, keyset
  cursor decode included) a list route pays per request.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from tenantry.capabilities.filtering import FieldSet, compile_document, fields
from tenantry.capabilities.pagination import CursorSigner, ListQuery

FIELDS = FieldSet(
    "bench.orders",
    id=fields.uuid("id", "o.id"),
    fields=[
        fields.text("customer", "o.customer", sortable=True),
        fields.integer("qty", "o.qty", nullable=True),
        fields.numeric("amount", "o.amount", sortable=True),
        fields.datetime("created_at", "o.created_at", sortable=True),
        fields.date("due", "o.due", nullable=True),
        fields.enum("status", "o.status", ["new", "paid", "void"]),
        fields.json_text("metadata.region", "o.metadata", "region"),
    ],
)
CONDITIONS: list[dict[str, Any]] = [
    {"field": "customer", "op": "icontains", "value": "acme"},
    {"field": "qty", "op": "gte", "value": 2},
    {"field": "qty", "op": "lte", "value": 500},
    {"field": "amount", "op": "between", "value": ["10.00", "9999.99"]},
    {"field": "created_at", "op": "gte", "value": "2026-01-01T00:00:00Z"},
    {"field": "created_at", "op": "lt", "value": "2026-02-01T00:00:00Z"},
    {"field": "due", "op": "is_null", "value": False},
    {"field": "status", "op": "in", "value": ["new", "paid"]},
    {"field": "metadata.region", "op": "eq", "value": "emea"},
    {"field": "customer", "op": "startswith", "value": "A"},
]
NESTED = {
    "or": [
        {"field": "status", "op": "eq", "value": "new"},
        {"not": {"field": "amount", "op": "gt", "value": 5000}},
        {"field": "due", "op": "lte", "value": "2026-03-01"},
        {"field": "qty", "op": "ne", "value": 7},
    ]
}
DOC = {
    "filters": [
        *CONDITIONS,
        NESTED,
        {"field": "customer", "op": "ne", "value": "test"},
        {"field": "qty", "op": "nin", "value": [1, 3, 5]},
        {"field": "amount", "op": "gte", "value": 1},
        {"field": "created_at", "op": "between", "value": ["2025-12-01", "2026-06-01"]},
        {"field": "metadata.region", "op": "contains", "value": "e_"},
        {"field": "status", "op": "ne", "value": "void"},
    ],
    "sort": {"field": "created_at", "dir": "desc"},
}
RAW = orjson.dumps(DOC)


def count(node: Any) -> int:
    if isinstance(node, dict) and "field" in node:
        return 1
    if isinstance(node, dict):
        inner = node.get("filters") or node.get("and") or node.get("or") or [node.get("not")]
        return sum(count(n) for n in inner)
    return 0


assert count(DOC) == 20, count(DOC)
OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
COLUMNS = {f.name: f.expr for f in FIELDS.fields}


def hand_written(raw: bytes) -> tuple[str, list[Any]]:
    """The same kind of WHERE built by hand: no validation, no type parsing."""
    doc = orjson.loads(raw)
    params: list[Any] = []

    def node(n: dict[str, Any]) -> str:
        if "or" in n:
            return "(" + " OR ".join(node(x) for x in n["or"]) + ")"
        if "not" in n:
            return f"NOT ({node(n['not'])})"
        col, op, v = COLUMNS[n["field"]], n["op"], n.get("value", True)
        if op in OPS:
            params.append(v)
            return f"{col} {OPS[op]} ${len(params)}"
        if op in ("in", "nin"):
            params.append(v)
            return f"{col} {'=' if op == 'in' else '<>'} ANY(${len(params)})"
        if op == "between":
            params.extend(v)
            return f"{col} BETWEEN ${len(params) - 1} AND ${len(params)}"
        if op == "is_null":
            return f"{col} IS {'' if v else 'NOT '}NULL"
        params.append(f"%{v}%")
        return f"{col} {'ILIKE' if op == 'icontains' else 'LIKE'} ${len(params)}"

    return " AND ".join(node(n) for n in doc["filters"]), params


SIGNER = CursorSigner(b"bench-key-bench-key-bench-key-xx")


def list_query(raw: bytes) -> Any:
    doc = orjson.loads(raw)
    q = ListQuery.parse(FIELDS, SIGNER, document=doc, limit=50, scope="tenant")
    return q.render("SELECT o.* FROM orders o")


def measure(rows: list[tuple[str, Callable[[bytes], Any]]], n: int) -> dict[str, list[float]]:
    """Per-call µs for each row; rows are interleaved in rounds of 100 calls so that noise
    from other processes on the machine hits every row alike."""
    samples: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _, fn in rows:  # warm-up
        for _ in range(300):
            fn(RAW)
    clock = time.perf_counter_ns
    for _ in range(max(1, n // 100)):
        for name, fn in rows:
            out = samples[name]
            for _ in range(100):
                t0 = clock()
                fn(RAW)
                out.append((clock() - t0) / 1000)
    return samples


def engine(raw: bytes) -> Any:
    return compile_document(FIELDS, orjson.loads(raw))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--iterations", type=int, default=20_000)
    n = ap.parse_args().iterations
    rows: list[tuple[str, Callable[[bytes], Any]]] = [
        ("json parse only (baseline)", orjson.loads),
        ("hand-written SQL build (baseline)", hand_written),
        ("filter engine: parse+validate+compile", engine),
        ("engine + ListQuery.parse + render", list_query),
    ]
    samples = measure(rows, n)
    base = statistics.median(samples["hand-written SQL build (baseline)"])
    print(f"20-condition filter document ({len(RAW)} bytes), {n} calls per row, interleaved\n")
    print(f"| {'what':<40} | {'p50 µs':>8} | {'p99 µs':>8} | {'p50 / hand-written':>18} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10}|{'-' * 20}|")
    for name, _ in rows:
        xs = sorted(samples[name])
        p50, p99 = statistics.median(xs), xs[max(0, int(len(xs) * 0.99) - 1)]
        print(f"| {name:<40} | {p50:8.1f} | {p99:8.1f} | {p50 / base:17.2f}x |")


if __name__ == "__main__":
    main()
