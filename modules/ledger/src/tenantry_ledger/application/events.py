"""Integration events built from posted transactions.

Posting records them on its unit of work (``uow.publish_many``); the kernel writes them to
the transactional outbox at the commit, so a rolled-back posting publishes nothing and a
committed one is delivered.
"""

from __future__ import annotations

from tenantry_ledger.contracts import TransactionPosted
from tenantry_ledger.domain.model import Posted


def transaction_posted(p: Posted) -> TransactionPosted:
    """The ``ledger.TransactionPosted.v1`` event of one posted transaction.

    Validated from one plain dict (``model_validate``): the cheapest of the three ways
    measured (docs/performance.md, "Measurements behind the code")."""
    return TransactionPosted.model_validate(
        {
            "transaction_id": p.id,
            "posted_at": p.posted_at,
            "description": p.description,
            "entries": [
                {
                    "account_id": e.account_id,
                    "account_code": e.account_code,
                    "currency": e.currency,
                    "direction": e.direction.value,
                    "amount": e.amount,
                }
                for e in p.entries
            ],
            "reverses": p.reverses,
        }
    )
