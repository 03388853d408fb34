"""The ledger's domain: accounts, transactions, double-entry rules. Pure Python."""
