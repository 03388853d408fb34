"""Folding a posted transaction into daily summary deltas: per (day, account, currency) the
debit and credit volume (minor units) and the number of entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID


class Entry(Protocol):
    @property
    def account_id(self) -> UUID: ...
    @property
    def account_code(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def direction(self) -> Literal["debit", "credit"]: ...
    @property
    def amount(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Delta:
    day: date
    account_id: UUID
    account_code: str
    currency: str
    debit: int
    credit: int
    count: int


def day_of(posted_at: datetime) -> date:
    """The UTC calendar day (naive timestamps are taken as UTC)."""
    if posted_at.tzinfo is None:
        posted_at = posted_at.replace(tzinfo=UTC)
    return posted_at.astimezone(UTC).date()


def deltas(posted_at: datetime, entries: list[Entry]) -> list[Delta]:
    day = day_of(posted_at)
    acc: dict[tuple[UUID, str], list[int]] = {}
    codes: dict[UUID, str] = {}
    for e in entries:
        if e.amount < 0:
            raise ValueError("entry amounts are non-negative minor units")
        slot = acc.setdefault((e.account_id, e.currency), [0, 0, 0])
        slot[0 if e.direction == "debit" else 1] += e.amount
        slot[2] += 1
        codes[e.account_id] = e.account_code
    return [
        Delta(day, aid, codes[aid], cur, d, c, n)
        for (aid, cur), (d, c, n) in sorted(acc.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
    ]


@dataclass(frozen=True, slots=True)
class DayRange:
    """The days one answer covers: ``start`` to ``end`` inclusive; ``next_start`` is the
    first day of the next page, None on the last one."""

    start: date
    end: date
    next_start: date | None


def page_of(start: date, to: date, max_days: int) -> DayRange | None:
    """The page of ``start..to`` an answer covers. Rules between two parameters are not
    errors: ``to`` before ``start`` is an empty range (None), and a range longer than
    ``max_days`` is answered in pages of ``max_days`` days."""
    if to < start:
        return None
    if (to - start).days >= max_days:
        end = start + timedelta(days=max_days - 1)
        return DayRange(start, end, end + timedelta(days=1))
    return DayRange(start, to, None)


def covers(dashboard: dict[str, Any], rows: list[Delta]) -> bool:
    """Does the dashboard's metadata (``ReportingService.dashboard``: first and last day,
    accounts, currencies) already include every day, account and currency of ``rows``? Then
    folding them changes no metadata (an account's code is taken as it was first seen)."""
    first, last = dashboard.get("first_day"), dashboard.get("last_day")
    if first is None or last is None:
        return not rows
    accounts = {a["id"] for a in dashboard.get("accounts", ())}
    currencies = set(dashboard.get("currencies", ()))
    return all(
        first <= r.day.isoformat() <= last
        and str(r.account_id) in accounts
        and r.currency in currencies
        for r in rows
    )
