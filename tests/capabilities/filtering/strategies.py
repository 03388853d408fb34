"""Hypothesis strategies: valid filter documents over ``ITEMS`` and arbitrary junk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tests.capabilities.filtering.conftest import (
    BASE_AT,
    BASE_DAY,
    ITEMS,
    REFS,
    STATUSES,
    TEXT_ALPHABET,
)

_text = st.text(alphabet=TEXT_ALPHABET, max_size=4)
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "name": _text,
    "meta.color": st.one_of(_text, st.sampled_from(["red", "Blue", "blue"])),
    "qty": st.one_of(st.integers(-6, 6), st.integers(-(2**31), 2**31 - 1)),
    "big": st.one_of(st.integers(-4, 4), st.integers(-(2**63), 2**63 - 1)),
    "price": st.one_of(
        st.decimals(-12, 12, places=2).map(str),
        st.floats(-12, 12, allow_nan=False).map(lambda f: round(f, 3)),
        st.integers(-12, 12),
    ),
    "flag": st.booleans(),
    "ref": st.sampled_from([str(u) for u in REFS]),
    "day": st.dates(BASE_DAY - timedelta(days=6), BASE_DAY + timedelta(days=6)).map(
        lambda d: d.isoformat()
    ),
    "at": st.one_of(
        st.integers(-5, 5).map(lambda h: (BASE_AT + timedelta(hours=h)).isoformat()),
        st.datetimes(
            datetime(2025, 12, 31, 18), datetime(2026, 1, 1, 6), timezones=st.just(UTC)
        ).map(lambda d: d.isoformat()),
        st.just("2026-01-01"),
    ),
    "status": st.sampled_from(STATUSES),
}
FILTERABLE = sorted(f for f in ITEMS.by_name if f in SCALARS)


@st.composite
def condition(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(FILTERABLE))
    f = ITEMS.by_name[name]
    op = draw(st.sampled_from(sorted(f.ops)))
    scalar = SCALARS[name]
    if op == "is_null":
        return {"field": name, "op": op, "value": draw(st.booleans())}
    if op in ("in", "nin"):
        value: Any = draw(st.lists(scalar, min_size=1, max_size=4))
    elif op == "between":
        value = [draw(scalar), draw(scalar)]
    else:
        value = draw(scalar)
    return {"field": name, "op": op, "value": value}


def _combine(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    items = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        items.map(lambda xs: {"and": xs}),
        items.map(lambda xs: {"or": xs}),
        children.map(lambda x: {"not": x}),
    )


nodes = st.recursive(condition(), _combine, max_leaves=6)
valid_documents = st.lists(nodes, max_size=3).map(lambda xs: {"filters": xs})

json_junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # orjson (the encoder) stops at 64 bits
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(["eq", "in", "and", "or", "not", "qty", "name", "at", "tenant_id"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["field", "op", "value", "and", "or", "not", "filters", "sort", "x"])


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """A valid document with one part replaced by junk, or a junk key added."""
    doc = draw(valid_documents)
    conds = doc["filters"]
    if not conds:
        return draw(json_junk)
    target = conds[draw(st.integers(0, len(conds) - 1))]
    while "not" in target or "and" in target or "or" in target:
        branch = "not" if "not" in target else "and" if "and" in target else "or"
        target = target[branch] if branch == "not" else target[branch][0]
    target[draw(keys)] = draw(json_junk)
    return doc


any_documents = st.one_of(valid_documents, mutated_documents(), json_junk)
