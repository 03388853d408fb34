"""Ledger: a double-entry ledger (accounts, immutable transactions, exact balances)."""
