"""Reporting: per-tenant daily summaries built from the ledger's events."""
