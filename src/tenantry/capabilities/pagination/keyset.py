"""Keyset ("seek") pagination over declared sort fields with the row id as tie-breaker.

Order: each sort key ``ASC NULLS LAST`` or ``DESC NULLS FIRST`` (NULL ranks above every
value, which is also how a default B-tree index is ordered), then the id in the direction of
the last sort key. "After the last row" is then, for keys ``k1..kn`` with values ``v1..vn``::

    k1 after v1  OR  (k1 = v1 AND k2 after v2)  OR  ...

with NULL-aware terms built from the cursor's values (a NULL value is known when the SQL is
built, so ``= NULL`` becomes ``IS NULL`` and "after NULL" becomes ``IS NOT NULL`` (desc) or
nothing (asc)). When no key is nullable and all go the same way, it is one row comparison
``(k1, k2, id) > ($1, $2, $3)``, which a matching index serves directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tenantry.capabilities.filtering.compiler import Params
from tenantry.capabilities.filtering.fields import SortKey


def order_by(keys: Sequence[SortKey]) -> str:
    return ", ".join(
        f"{k.field.sql} {'DESC NULLS FIRST' if k.desc else 'ASC NULLS LAST'}" for k in keys
    )


def after(keys: Sequence[SortKey], values: Sequence[Any], params: Params) -> str:
    """The predicate "row comes after the row with these key values"."""
    assert len(keys) == len(values)
    same_way = len({k.desc for k in keys}) == 1
    if same_way and all(
        not k.field.nullable and v is not None for k, v in zip(keys, values, strict=True)
    ):
        cols = ", ".join(k.field.sql for k in keys)
        refs = ", ".join(params.add(v, k.field.sql_type) for k, v in zip(keys, values, strict=True))
        return f"({cols}) {'<' if keys[0].desc else '>'} ({refs})"
    refs_ = [
        None if v is None else params.add(v, k.field.sql_type)
        for k, v in zip(keys, values, strict=True)
    ]
    disjuncts: list[str] = []
    equal: list[str] = []
    for k, ref in zip(keys, refs_, strict=True):
        e = k.field.sql
        if ref is None:
            beyond = f"{e} IS NOT NULL" if k.desc else None
            same = f"{e} IS NULL"
        else:
            if k.desc:
                beyond = f"{e} < {ref}"
            elif k.field.nullable:
                beyond = f"({e} > {ref} OR {e} IS NULL)"
            else:
                beyond = f"{e} > {ref}"
            same = f"{e} = {ref}"
        if beyond is not None:
            disjuncts.append("(" + " AND ".join([*equal, beyond]) + ")")
        equal.append(same)
    return "(" + " OR ".join(disjuncts) + ")" if disjuncts else "FALSE"
