"""The audit log as an export source (``/api/v1/exports``, source ``audit.events``), run in
the tenant's unit of work like every export (RLS applies)."""

from __future__ import annotations

from tenantry.capabilities.audit.sql import EVENTS_SQL
from tenantry.capabilities.export.sources import Column, Source

EVENTS = Source(
    "audit.events",
    EVENTS_SQL,
    (
        Column("seq", "int"),
        Column("id", "uuid"),
        Column("occurred_at", "timestamptz"),
        Column("actor"),
        Column("actor_kind"),
        Column("client"),
        Column("ip"),
        Column("action"),
        Column("resource"),
        Column("outcome"),
        Column("request_id"),
        Column("trace_id"),
    ),
    ("seq",),
    permission="audit:read",
    title="Audit events",
)
