"""Ledger infrastructure: SQL, the store over units of work, list queries."""
