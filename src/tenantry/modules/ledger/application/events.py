"""Integration events built from posted transactions.

Posting publishes them inside its own unit of work through ``LedgerService.publish``;
``api.outbox_publisher(dispatcher)`` connects it to the transactional outbox, so a rolled-back
posting publishes nothing and a committed one is delivered (see api.py for why it is not on
by default yet).
"""

from __future__ import annotations

from tenantry.modules.ledger.contracts import PostedEntry, TransactionPosted
from tenantry.modules.ledger.domain.model import Posted


def transaction_posted(p: Posted) -> TransactionPosted:
    """The ``ledger.TransactionPosted.v1`` event of one posted transaction.

    Built with ``model_construct`` (no validation): every field comes from a posted
    transaction the domain has already checked, with the contract's types (UUID, datetime,
    "debit"/"credit", int), and validating them again was ~15 % of a 1,000-item batch.
    ``tests/ledger/test_events.py`` checks the result equals the validated model's."""
    return TransactionPosted.model_construct(
        transaction_id=p.id,
        posted_at=p.posted_at,
        description=p.description,
        entries=[
            PostedEntry.model_construct(
                account_id=e.account_id,
                account_code=e.account_code,
                currency=e.currency,
                direction=e.direction.value,
                amount=e.amount,
            )
            for e in p.entries
        ],
        reverses=p.reverses,
    )
