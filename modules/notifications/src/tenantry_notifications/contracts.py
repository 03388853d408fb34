"""Notifications' public surface: it consumes ``identity.UserAddedToTenant.v1``,
``ledger.TransactionPosted.v1`` and ``platform.TenantOnboarded.v1``; it publishes nothing.

Webhook receivers verify ``X-Tenantry-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256 of ``"<t>." + body`` with the endpoint's secret; ``X-Tenantry-Message-Id`` is
stable across retries (deduplicate on it)."""

from __future__ import annotations

SIGNATURE_HEADER = "X-Tenantry-Signature"
MESSAGE_ID_HEADER = "X-Tenantry-Message-Id"
EVENT_HEADER = "X-Tenantry-Event"

__all__ = ["EVENT_HEADER", "MESSAGE_ID_HEADER", "SIGNATURE_HEADER"]
