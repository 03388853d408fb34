"""Cron expressions with a timezone: validation and the next fire time (croniter).

A schedule is validated when it is created: an unknown timezone, a malformed expression or
one that never fires (``0 0 30 2 *``: 30 February) is a ``ValidationFailed`` (422), so nothing
is stored that the scheduler would choke on later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from tenantry.kernel.errors import ValidationFailed

#: A cron that does not fire within this many years is treated as never firing.
MAX_YEARS_BETWEEN_RUNS = 5


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            f"unknown timezone {name!r}",
            errors=[{"field": "timezone", "message": "not an IANA timezone name"}],
        ) from None


def next_fire(expr: str, tz: str, after: datetime | None = None) -> datetime:
    """The first time strictly after ``after`` (default now) that ``expr`` fires in ``tz``,
    as an aware UTC datetime. Raises ValidationFailed for bad or never-firing expressions."""
    zi = zone(tz)
    if not croniter.is_valid(expr) or len(expr.split()) != 5:
        raise ValidationFailed(
            f"invalid cron expression {expr!r}",
            errors=[{"field": "cron", "message": "expected 5 fields: min hour dom month dow"}],
        )
    start = (after or datetime.now(UTC)).astimezone(zi)
    try:
        it = croniter(expr, start, max_years_between_matches=MAX_YEARS_BETWEEN_RUNS)
        nxt: datetime = it.get_next(datetime)
    except CroniterBadDateError:
        raise ValidationFailed(
            f"cron expression {expr!r} never fires",
            errors=[{"field": "cron", "message": "no run within 5 years"}],
        ) from None
    return nxt.astimezone(UTC)
