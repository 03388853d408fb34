"""Reporting's public surface. It consumes ``ledger.TransactionPosted.v1`` and publishes
nothing yet; its output is the HTTP API (``GET /api/v1/reporting/daily``)."""

from __future__ import annotations

__all__: list[str] = []
