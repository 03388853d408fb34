"""Integration events built from posted transactions.

The dispatcher and transactional outbox are being built elsewhere; when they land, posting
publishes with one call inside the same unit of work (``LedgerService.publish``), e.g.
``await dispatcher.publish(uow, transaction_posted(p))`` for each posted transaction.
"""

from __future__ import annotations

from tenantry.modules.ledger.contracts import PostedEntry, TransactionPosted
from tenantry.modules.ledger.domain.model import Posted


def transaction_posted(p: Posted) -> TransactionPosted:
    """The ``ledger.TransactionPosted.v1`` event of one posted transaction."""
    return TransactionPosted(
        transaction_id=p.id,
        posted_at=p.posted_at,
        description=p.description,
        entries=[
            PostedEntry(
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
