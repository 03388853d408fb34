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

#: The dashboard's metadata: the days covered, the accounts and the currencies seen.
DASHBOARD = """
SELECT min(day) AS first_day, max(day) AS last_day,
       coalesce(array_agg(DISTINCT currency ORDER BY currency), '{}') AS currencies
FROM reporting_daily
"""
DASHBOARD_ACCOUNTS = """
SELECT DISTINCT account_id, account_code FROM reporting_daily
ORDER BY account_code, account_id
"""
#: NOTIFY (in the fold's transaction, so after its commit) that a tenant's dashboard
#: metadata changed; payload: the tenant id.
DASHBOARD_CHANNEL = "tenantry_reporting_dashboard"
