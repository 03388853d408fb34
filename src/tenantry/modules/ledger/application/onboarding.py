"""Charts of accounts a new tenant starts with (the onboarding saga's
``platform.SeedChartOfAccounts.v1``). Pure data: the infrastructure handler writes them."""

from __future__ import annotations

from dataclasses import dataclass

from tenantry.modules.ledger.domain.model import AccountType, default_allow_negative

#: The ``metadata.seeded`` mark of seeded accounts: what the compensation may remove.
SEEDED_KEY = "seeded"


@dataclass(frozen=True, slots=True)
class ChartAccount:
    code: str
    name: str
    type: AccountType

    @property
    def allow_negative(self) -> bool:
        return default_allow_negative(self.type)


CHARTS: dict[str, tuple[ChartAccount, ...]] = {
    "default": (
        ChartAccount("1000", "Cash", AccountType.ASSET),
        ChartAccount("1200", "Accounts receivable", AccountType.ASSET),
        ChartAccount("2000", "Accounts payable", AccountType.LIABILITY),
        ChartAccount("3000", "Owner's equity", AccountType.EQUITY),
        ChartAccount("4000", "Revenue", AccountType.INCOME),
        ChartAccount("5000", "Expenses", AccountType.EXPENSE),
    ),
    "none": (),
}


class UnknownChart(ValueError):
    pass


def chart(template: str) -> tuple[ChartAccount, ...]:
    try:
        return CHARTS[template]
    except KeyError:
        raise UnknownChart(
            f"unknown chart of accounts {template!r} (known: {', '.join(sorted(CHARTS))})"
        ) from None
