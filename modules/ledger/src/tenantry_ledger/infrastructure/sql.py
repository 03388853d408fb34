"""The ledger's SQL, as named constants (always parameterized; tables reached through the
tenant's search_path). No statement names ``tenant_id`` except as a conflict target: the
unit of work's tenant filter adds ``tenant_id = <tenant>`` to every reference to a ledger
table and the tenant's id to every INSERT (kernel/db/tenant_filter), and RLS checks the
same underneath.

A posting is two statements inside one unit of work (BEGIN + set tenant + these + COMMIT):

1. ``CLAIM_AND_LOCK`` inserts the idempotency keys (sorted; a concurrent request with the same
   key waits here for the first to finish, then finds it), then, only if a key was claimed,
   locks the accounts ``FOR NO KEY UPDATE`` in id order (one global lock order: keys, then
   accounts by id, so concurrent postings never deadlock) and returns their state and a
   timestamp taken after the locks (so ``posted_at`` never goes backwards on an account).
2. ``WRITE`` inserts the transactions and entries (multi-row, ``unnest``), sets the accounts'
   new totals and drops the keys of refused items, in one statement, which also carries the
   unit of work's outbox rows and audit records (``uow.execute_with_collected`` appends them
   as CTEs: it must stay a ``WITH ... SELECT 1`` statement). Exact amounts and totals
   travel as text and are cast to numeric in SQL: asyncpg's binary numeric encoder was ~4x
   slower than text for the ~7,600 values of a 1,000-item batch.

The decisions between the two (balance per currency, open accounts, allow_negative) are made
in Python on the locked rows (``domain.model.post``); the CHECK on ``ledger_accounts`` is the
last line of defence.
"""

CLAIM_AND_LOCK = """
WITH claim AS (
    INSERT INTO ledger_idempotency_keys (key, request_hash, transaction_id, status_code)
    SELECT k.key, k.hash, k.txn, 201
    FROM unnest($1::text[], $2::bytea[], $3::uuid[]) AS k(key, hash, txn)
    ON CONFLICT (tenant_id, key) DO NOTHING
    RETURNING key
), claimed AS (
    SELECT count(*) AS n FROM claim
), locked AS (
    SELECT a.id, a.code, a.type, a.currency, a.allow_negative, a.status,
           a.debits, a.credits, a.balance, a.entry_count
    FROM ledger_accounts a
    WHERE a.id = ANY($4::uuid[]) AND (SELECT n FROM claimed) > 0
    ORDER BY a.id
    FOR NO KEY UPDATE
)
SELECT 'k' AS kind, key, NULL::uuid AS id, NULL AS code, NULL AS type, NULL AS currency,
       NULL::boolean AS allow_negative, NULL AS status, NULL::numeric AS debits,
       NULL::numeric AS credits, NULL::numeric AS balance, NULL::bigint AS entry_count,
       NULL::timestamptz AS ts
FROM claim
UNION ALL
SELECT 'a', NULL, id, code, type, currency, allow_negative, status, debits, credits, balance,
       entry_count, NULL
FROM locked
UNION ALL
SELECT 't', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, clock_timestamp()
"""

STORED_KEYS = """
SELECT key, request_hash, transaction_id, status_code
FROM ledger_idempotency_keys WHERE key = ANY($1::text[])
"""

WRITE = """
WITH t AS (
    INSERT INTO ledger_transactions (id, description, metadata, amount, posted_at, reverses)
    SELECT x.id, x.description, x.metadata::jsonb, x.amount::numeric, $1, x.reverses
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[])
         AS x(id, description, metadata, amount, reverses)
), e AS (
    INSERT INTO ledger_entries
        (transaction_id, seq, account_id, direction, amount, posted_at, entry_no,
         debits_after, credits_after, balance_after)
    SELECT x.txn, x.seq, x.account_id, x.direction, x.amount, $1, x.entry_no,
           x.debits_after::numeric, x.credits_after::numeric, x.balance_after::numeric
    FROM unnest($7::uuid[], $8::int2[], $9::uuid[], $10::text[], $11::int8[], $12::int8[],
                $13::text[], $14::text[], $15::text[])
         AS x(txn, seq, account_id, direction, amount, entry_no, debits_after, credits_after,
              balance_after)
), u AS (
    UPDATE ledger_accounts a
    SET debits = v.debits::numeric, credits = v.credits::numeric,
        balance = v.balance::numeric, entry_count = v.n
    FROM unnest($16::uuid[], $17::text[], $18::text[], $19::text[], $20::int8[])
         AS v(id, debits, credits, balance, n)
    WHERE a.id = v.id
), d AS (
    DELETE FROM ledger_idempotency_keys WHERE key = ANY($21::text[])
)
SELECT 1
"""

ACCOUNT_COLUMNS = """
id, code, name, type, currency, allow_negative, status, metadata, created_at,
debits, credits, balance
"""

INSERT_ACCOUNT = f"""
INSERT INTO ledger_accounts (id, code, name, type, currency, allow_negative, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant_id, code) DO NOTHING
RETURNING {ACCOUNT_COLUMNS}
"""

GET_ACCOUNT = f"SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id = $1"

CLOSE_ACCOUNT = f"""
UPDATE ledger_accounts SET status = 'closed'
WHERE id = $1 AND balance = 0
RETURNING {ACCOUNT_COLUMNS}
"""

BALANCE = """
SELECT id, currency, debits, credits, balance, now() AS as_of FROM ledger_accounts WHERE id = $1
"""

BALANCE_AS_OF = """
SELECT a.id, a.currency, coalesce(e.debits_after, 0) AS debits,
       coalesce(e.credits_after, 0) AS credits, coalesce(e.balance_after, 0) AS balance
FROM ledger_accounts a
LEFT JOIN LATERAL (
    SELECT debits_after, credits_after, balance_after FROM ledger_entries e
    WHERE e.account_id = a.id AND e.posted_at <= $2
    ORDER BY e.entry_no DESC LIMIT 1
) e ON true
WHERE a.id = $1
"""


def transaction_columns(t: str) -> str:
    """A transaction's columns and its entries as JSON; ``t`` is the table alias."""
    return f"""
{t}.id, {t}.description, {t}.metadata, {t}.posted_at, {t}.reverses, {t}.amount,
(SELECT json_agg(json_build_object(
     'account_id', e.account_id, 'account_code', a.code, 'currency', a.currency,
     'direction', e.direction, 'amount', e.amount) ORDER BY e.seq)
 FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
 WHERE e.transaction_id = {t}.id) AS entries
"""


TRANSACTIONS_BY_ID = f"""
SELECT {transaction_columns("t")} FROM ledger_transactions t WHERE t.id = ANY($1::uuid[])
"""

ENTRIES_OF = """
SELECT e.account_id, e.direction, e.amount
FROM ledger_entries e WHERE e.transaction_id = $1 ORDER BY e.seq
"""

ACCOUNT_EXISTS = "SELECT 1 FROM ledger_accounts WHERE id = $1"

ACCOUNTS_SQL = """
SELECT id, code, name, type, currency, status, balance, debits, credits, entry_count, created_at
FROM ledger_accounts
"""

TRANSACTIONS_SQL = """
SELECT id, posted_at, description, amount, reverses FROM ledger_transactions
"""

ENTRIES_SQL = """
SELECT a.code AS account_code, e.entry_no, e.account_id, e.transaction_id, e.seq, e.posted_at,
       e.direction, e.amount, e.balance_after, t.description
FROM ledger_entries e
JOIN ledger_accounts a ON a.id = e.account_id
JOIN ledger_transactions t ON t.id = e.transaction_id
"""

LIST_ACCOUNTS = f"""
SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts x
WHERE x.metadata @> $1::jsonb AND {{where}}
ORDER BY {{order_by}} LIMIT {{limit}}
"""

LIST_TRANSACTIONS = f"""
SELECT {transaction_columns("x")} FROM ledger_transactions x
WHERE ($1::uuid IS NULL OR EXISTS (
        SELECT 1 FROM ledger_entries f WHERE f.account_id = $1 AND f.transaction_id = x.id))
  AND x.metadata @> $2::jsonb AND {{where}}
ORDER BY {{order_by}} LIMIT {{limit}}
"""

STATEMENT = """
SELECT e.entry_no, e.transaction_id, t.description, e.posted_at, e.direction, e.amount,
       e.balance_after
FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE e.account_id = $1 AND {where}
ORDER BY {order_by} LIMIT {limit}
"""

SEED_ACCOUNTS = """
INSERT INTO ledger_accounts (id, code, name, type, currency, allow_negative, metadata)
SELECT a.id, a.code, a.name, a.type, $1, a.allow_negative, $2::jsonb
FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::boolean[])
     AS a (id, code, name, type, allow_negative)
ON CONFLICT (tenant_id, code) DO NOTHING
RETURNING code
"""

REMOVE_SEEDED = """
DELETE FROM ledger_accounts
WHERE metadata->>'seeded' = $1 AND entry_count = 0
RETURNING code
"""
