"""Charts of accounts a new tenant starts with: the ledger's onboarding option
(``chart_of_accounts``: a template, ``none`` for an empty ledger) and its check. Pure data: the
ledger's onboarding step (infrastructure/onboarding.py) writes them."""

from __future__ import annotations

from dataclasses import dataclass

from tenantry.kernel.errors import ValidationFailed
from tenantry.kernel.tenancy.onboarding import OnboardingOption
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tenantry_ledger.domain.model import AccountType, default_allow_negative

#: The ``metadata.seeded`` mark of seeded accounts: what the compensation may remove.
SEEDED_KEY = "seeded"
#: The step's name in the onboarding saga, and the option it reads.
STEP = "chart_of_accounts"
#: The currency of the seeded accounts.
CHART_CURRENCY = "EUR"


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


CHART_OPTION = OnboardingOption(
    STEP,
    "Ledger chart-of-accounts template: default | none (empty ledger).",
    {"enum": [*sorted(CHARTS), None], "default": "default"},
    max_length=40,
)


def template_of(options: dict[str, object] | ProvisionRequest) -> str:
    """The template an onboarding asks for (``default`` unless the option names one)."""
    opts = options.options if isinstance(options, ProvisionRequest) else options
    return str(opts.get(STEP) or "default")


class UnknownChart(ValidationFailed):
    """An onboarding request names a chart-of-accounts template that does not exist."""

    type_slug, title = "ledger-unknown-chart", "Unknown chart of accounts"


def check_onboarding_request(req: ProvisionRequest) -> None:
    """The provisioner's check of ``chart_of_accounts`` (before anything is written)."""
    chart(template_of(req))


def chart(template: str) -> tuple[ChartAccount, ...]:
    try:
        return CHARTS[template]
    except KeyError:
        known = ", ".join(sorted(CHARTS))
        msg = f"unknown chart of accounts {template!r} (known: {known})"
        raise UnknownChart(msg, errors=[{"field": "chart_of_accounts", "message": msg}]) from None
