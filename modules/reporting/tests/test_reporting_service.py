"""ReportingService and ReportingHandlers on the in-memory fakes (reporting_fakes.py):
the range rules of the daily summary (empty, one page, pages of MAX_DAYS days) and the fold
of posted transactions, without PostgreSQL. tests/messaging/test_reporting.py runs the same
on PostgreSQL, in-process and over the bus."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from reporting_fakes import FakeSummaryRepository, FakeUnits, fake_reporting
from tenantry.kernel.messaging.envelope import MessageContext
from tenantry_ledger.contracts import PostedEntry, TransactionPosted
from tenantry_reporting.application.handlers import ReportingHandlers
from tenantry_reporting.application.services import MAX_DAYS, DailyPage, ReportingService
from tenantry_reporting.domain.summary import DayRange, Delta, covers, page_of

CASH, SALES = uuid.uuid4(), uuid.uuid4()


def posted(at: datetime, amount: int, currency: str = "EUR") -> TransactionPosted:
    return TransactionPosted(
        transaction_id=uuid.uuid4(),
        posted_at=at,
        description="t",
        entries=[
            PostedEntry(
                account_id=CASH,
                account_code="1000",
                currency=currency,
                direction="debit",
                amount=amount,
            ),
            PostedEntry(
                account_id=SALES,
                account_code="4000",
                currency=currency,
                direction="credit",
                amount=amount,
            ),
        ],
    )


def ctx() -> MessageContext:
    return MessageContext(uuid.uuid4(), TransactionPosted.message_name, None, "reporting")


@pytest.mark.parametrize(
    ("start", "to", "expected"),
    [
        (date(2026, 4, 2), date(2026, 4, 1), None),  # to before from: empty
        (date(2026, 4, 2), date(2026, 4, 2), DayRange(date(2026, 4, 2), date(2026, 4, 2), None)),
        # 366 days (a leap year) is one page; one day more is two
        (
            date(2024, 1, 1),
            date(2024, 12, 31),
            DayRange(date(2024, 1, 1), date(2024, 12, 31), None),
        ),
        (
            date(2024, 1, 1),
            date(2025, 1, 1),
            DayRange(date(2024, 1, 1), date(2024, 12, 31), date(2025, 1, 1)),
        ),
        (
            date(2000, 1, 1),
            date(2589, 1, 1),
            DayRange(date(2000, 1, 1), date(2000, 12, 31), date(2001, 1, 1)),
        ),
    ],
)
def test_pages_of_a_range(start: date, to: date, expected: DayRange | None) -> None:
    assert page_of(start, to, MAX_DAYS) == expected


async def test_an_empty_range_opens_no_unit_of_work() -> None:
    service, _, units = fake_reporting()
    page = await service.daily(date(2026, 4, 2), date(2026, 4, 1))
    assert page == DailyPage(date(2026, 4, 2), date(2026, 4, 1), [], None)
    assert units.opened == []


async def test_folded_transactions_are_read_back_by_day_in_a_read_only_unit_of_work() -> None:
    service, handlers, units = fake_reporting()
    late = datetime(2026, 4, 2, 23, 30, tzinfo=UTC)
    for at, amount in [(late, 100), (late, 200), (datetime(2026, 4, 3, 0, 5, tzinfo=UTC), 7)]:
        async with units() as uow:  # the dispatcher's unit of work
            await handlers.on_transaction_posted(uow, posted(at, amount), ctx())
    page = await service.daily(date(2026, 4, 2), date(2026, 4, 2))
    assert units.opened[-1] is True
    assert (page.start, page.end, page.next_start) == (date(2026, 4, 2), date(2026, 4, 2), None)
    assert page.items == [
        {
            "day": "2026-04-02",
            "account_id": str(CASH),
            "account_code": "1000",
            "currency": "EUR",
            "debit": 300,
            "credit": 0,
            "volume": 300,
            "count": 2,
        },
        {
            "day": "2026-04-02",
            "account_id": str(SALES),
            "account_code": "4000",
            "currency": "EUR",
            "debit": 0,
            "credit": 300,
            "volume": 300,
            "count": 2,
        },
    ]
    both = await service.daily(date(2026, 4, 1), date(2026, 4, 30))
    assert [(i["day"], i["count"]) for i in both.items] == [
        ("2026-04-02", 2),
        ("2026-04-02", 2),
        ("2026-04-03", 1),
        ("2026-04-03", 1),
    ]


async def test_a_long_range_reads_only_its_first_page() -> None:
    service, handlers, units = fake_reporting()
    for at in (datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC)):
        async with units() as uow:
            await handlers.on_transaction_posted(uow, posted(at, 5), ctx())
    page = await service.daily(date(2026, 1, 1), date(2027, 6, 1))  # 366 days: to 2027-01-01
    assert (page.end, page.next_start) == (date(2027, 1, 1), date(2027, 1, 2))
    assert {i["day"] for i in page.items} == {"2026-12-31"}
    rest = await service.daily(date(2027, 1, 2), date(2027, 6, 1))
    assert (rest.end, rest.next_start) == (date(2027, 6, 1), None)
    assert {i["day"] for i in rest.items} == {"2027-01-02"}


async def test_a_fold_in_a_rolled_back_unit_of_work_leaves_nothing() -> None:
    service, handlers, units = fake_reporting()

    class Boom(Exception):
        pass

    async def fold_then_fail() -> None:
        async with units() as uow:
            await handlers.on_transaction_posted(
                uow, posted(datetime(2026, 5, 1, tzinfo=UTC), 9), ctx()
            )
            raise Boom

    with pytest.raises(Boom):
        await fold_then_fail()
    assert units.rollbacks == 1
    assert (await service.daily(date(2026, 5, 1), date(2026, 5, 1))).items == []


class RecordingDashboards:
    """A ``DashboardCache`` kept in a dict: what the handler peeks and whom it tells."""

    def __init__(self) -> None:
        self.value: dict[str, Any] | None = None
        self.changed_in: list[object] = []

    async def get(self, load: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        if self.value is None:
            self.value = await load()
        return self.value

    async def peek(self) -> dict[str, Any] | None:
        return self.value

    async def changed(self, uow: object) -> None:
        self.changed_in.append(uow)
        self.value = None  # what every process's listener does at the commit


async def test_only_a_fold_that_changes_the_dashboard_metadata_tells_every_process() -> None:
    units, repository = FakeUnits(), FakeSummaryRepository()
    dashboards = RecordingDashboards()
    service = ReportingService(units, repository, dashboards)
    handlers = ReportingHandlers(repository, dashboards)
    at = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
    async with units() as uow:  # nothing cached: told (a read may be filling it)
        await handlers.on_transaction_posted(uow, posted(at, 5), ctx())
    assert len(dashboards.changed_in) == 1
    meta = await service.dashboard()
    assert (meta["first_day"], meta["last_day"], meta["currencies"]) == (
        "2026-04-02",
        "2026-04-02",
        ["EUR"],
    )
    async with units() as uow:  # the same day, accounts and currency: nothing to tell
        await handlers.on_transaction_posted(uow, posted(at, 7), ctx())
    assert len(dashboards.changed_in) == 1
    async with units() as uow:  # a new currency
        await handlers.on_transaction_posted(uow, posted(at, 7, "USD"), ctx())
    assert len(dashboards.changed_in) == 2
    assert (await service.dashboard())["currencies"] == ["EUR", "USD"]
    async with units() as uow:  # a new day
        await handlers.on_transaction_posted(uow, posted(at + timedelta(days=1), 7), ctx())
    assert len(dashboards.changed_in) == 3
    assert (await service.dashboard())["last_day"] == "2026-04-03"


def test_covers_names_what_the_metadata_lists() -> None:
    meta = {
        "first_day": "2026-04-01",
        "last_day": "2026-04-03",
        "accounts": [{"id": str(CASH), "code": "1000"}],
        "currencies": ["EUR"],
    }
    row = Delta(date(2026, 4, 2), CASH, "1000", "EUR", 1, 0, 1)
    assert covers(meta, [row])
    assert not covers(meta, [Delta(date(2026, 4, 4), CASH, "1000", "EUR", 1, 0, 1)])
    assert not covers(meta, [Delta(date(2026, 4, 2), uuid.uuid4(), "1000", "EUR", 1, 0, 1)])
    assert not covers(meta, [Delta(date(2026, 4, 2), CASH, "1000", "USD", 1, 0, 1)])
    assert not covers({"first_day": None, "last_day": None}, [row])
