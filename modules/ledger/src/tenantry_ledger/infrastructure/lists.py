"""The ledger's list routes on the shared filter engine and keyset pagination.

Each list declares its whitelisted fields (``FieldSet``). Two ledger filters the engine has no
field type for are taken out of the document's top-level ``filters`` before it parses the
rest (their conditions are AND-ed like the others):

- ``{"field": "account_id", "op": "eq", "value": <uuid>}`` on transactions: the transaction
  has an entry on that account (``EXISTS`` over entries, index ``(tenant_id, account_id, …)``);
- ``{"field": "metadata.<key>", "op": "eq", "value": <any JSON>}``: containment
  ``metadata @> {"<key>": value}`` (any key, any JSON value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from tenantry.capabilities.filtering import FieldSet, fields
from tenantry.kernel.errors import ValidationFailed

ACCOUNT_FIELDS = FieldSet(
    "ledger.accounts",
    id=fields.uuid("id", "x.id"),
    fields=[
        fields.text("code", "x.code", sortable=True),
        fields.text("name", "x.name"),
        fields.enum("type", "x.type", ["asset", "liability", "equity", "income", "expense"]),
        fields.text("currency", "x.currency"),
        fields.enum("status", "x.status", ["open", "closed"]),
        fields.boolean("allow_negative", "x.allow_negative"),
        fields.datetime("created_at", "x.created_at", sortable=True),
    ],
    default_sort="created_at",
)

TRANSACTION_FIELDS = FieldSet(
    "ledger.transactions",
    id=fields.uuid("id", "x.id"),
    fields=[
        fields.datetime("posted_at", "x.posted_at", sortable=True),
        fields.numeric("amount", "x.amount", sortable=True),
        fields.text("description", "x.description"),
        fields.uuid("reverses", "x.reverses", nullable=True),
    ],
    default_sort="-posted_at",
)

ENTRY_FIELDS = FieldSet(
    "ledger.entries",
    id=fields.bigint("entry_no", "e.entry_no"),
    fields=[
        fields.datetime("posted_at", "e.posted_at"),
        fields.enum("direction", "e.direction", ["debit", "credit"]),
        fields.bigint("amount", "e.amount"),
    ],
    default_sort="entry_no",
)


@dataclass(slots=True)
class Extras:
    """The ledger-only conditions taken out of a filter document."""

    account_id: UUID | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def split_extras(doc: Any, *, account_filter: bool) -> tuple[Any, Extras]:
    """(the document without the ledger-only conditions, those conditions)."""
    extras = Extras()
    if not isinstance(doc, dict) or not isinstance(doc.get("filters"), list):
        return doc, extras
    rest = []
    for i, cond in enumerate(doc["filters"]):
        name = cond.get("field") if isinstance(cond, dict) else None
        ours = isinstance(name, str) and (
            name.startswith("metadata.") or (account_filter and name == "account_id")
        )
        if not ours or not isinstance(cond, dict) or not isinstance(name, str):
            rest.append(cond)
            continue
        where = f"filters[{i}]"
        if not cond.keys() <= {"field", "op", "value"} or "value" not in cond:
            raise _bad(where, f"{name}: expected {{field, op, value}}")
        if cond.get("op", "eq") != "eq":
            raise _bad(where, f"{name} supports only the op 'eq'")
        if name == "account_id":
            if extras.account_id is not None:
                raise _bad(where, "at most one account_id condition")
            try:
                extras.account_id = UUID(str(cond.get("value")))
            except ValueError:
                raise _bad(where, "account_id must be a UUID") from None
        else:
            key = name[len("metadata.") :]
            if not 0 < len(key) <= 63 or key in extras.metadata:
                raise _bad(where, "metadata.<key>: a key of 1-63 characters, once")
            extras.metadata[key] = cond.get("value")
    return {**doc, "filters": rest}, extras


def _bad(where: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"invalid filter at {where}: {message}", errors=[{"field": where, "message": message}]
    )
