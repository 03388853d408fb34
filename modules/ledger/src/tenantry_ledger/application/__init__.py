"""Ledger use cases: they get the store port (units of work), never a connection."""
