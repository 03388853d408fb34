"""The reporting module's SQL, as named constants (the daily summary, tenant store; the
unit of work's tenant filter adds ``tenant_id``, named here only as a conflict target)."""

from __future__ import annotations

UPSERT = """
INSERT INTO reporting_daily (day, account_id, account_code, currency, debit, credit, entries)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant_id, day, account_id, currency) DO UPDATE
SET debit = reporting_daily.debit + EXCLUDED.debit,
    credit = reporting_daily.credit + EXCLUDED.credit,
    entries = reporting_daily.entries + EXCLUDED.entries,
    account_code = EXCLUDED.account_code
"""

DAILY = """
SELECT day, account_id, account_code, currency, debit, credit, entries
FROM reporting_daily
WHERE day BETWEEN $1 AND $2
ORDER BY day, account_code, currency
LIMIT 10000
"""

DAILY_SQL = """
SELECT day, account_id, account_code, currency, debit, credit, debit + credit AS volume,
       entries AS count
FROM reporting_daily
"""
