"""The hash chain: a record's hash covers its content and the previous record's hash.

Pure functions, no I/O. Values are normalized through JSON first, so what is hashed at write
time is what a verifier re-reads from the database (jsonb keeps values, not key order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson

#: Columns covered by the hash, in the order of the INSERT.
FIELDS = (
    "tenant_id",
    "seq",
    "id",
    "occurred_at",
    "actor",
    "actor_kind",
    "client",
    "ip",
    "action",
    "resource",
    "outcome",
    "request_id",
    "trace_id",
    "before",
    "after",
    "details",
)
GENESIS = b""


def normalize(value: Any) -> Any:
    """A JSON value as the database will give it back (None stays None)."""
    if value is None:
        return None
    return orjson.loads(orjson.dumps(value, default=str))


def canonical(record: Mapping[str, Any]) -> bytes:
    doc: dict[str, Any] = {}
    for f in FIELDS:
        v = record.get(f)
        if isinstance(v, datetime):
            v = v.isoformat()
        elif f in ("tenant_id", "id") and v is not None:
            v = str(v)
        doc[f] = v
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def link(prev_hash: bytes, record: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(prev_hash + canonical(record)).digest()


def verify(rows: Iterable[Mapping[str, Any]], head_seq: int, head_hash: bytes) -> list[str]:
    """Every break in a tenant's chain (rows in ``seq`` order); empty when intact."""
    problems: list[str] = []
    expected_seq, prev = 1, GENESIS
    for r in rows:
        seq = int(r["seq"])
        if seq != expected_seq:
            problems.append(f"records {expected_seq}..{seq - 1} are missing (deleted)")
        if bytes(r["prev_hash"]) != prev:
            problems.append(f"record {seq}: previous-hash link broken")
        if link(bytes(r["prev_hash"]), r) != bytes(r["hash"]):
            problems.append(f"record {seq}: content does not match its hash (edited)")
        prev, expected_seq = bytes(r["hash"]), seq + 1
    if expected_seq - 1 != head_seq:
        problems.append(
            f"chain head says {head_seq} records, found up to {expected_seq - 1} "
            "(records deleted at the end, or head edited)"
        )
    elif head_seq and prev != head_hash:
        problems.append("chain head hash does not match the last record")
    return problems
