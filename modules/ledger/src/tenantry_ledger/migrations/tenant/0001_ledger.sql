-- Ledger: accounts (with their running totals), immutable transactions and entries,
-- idempotency keys. RLS is added by the migration runner; every key leads with tenant_id and
-- every foreign key carries it (RI checks bypass RLS).

CREATE TABLE ledger_accounts (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    code           text NOT NULL,
    name           text NOT NULL,
    type           text NOT NULL
                   CHECK (type IN ('asset', 'liability', 'equity', 'income', 'expense')),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    allow_negative boolean NOT NULL,
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    metadata       jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- Totals kept in the same database transaction as the entries (exact: numeric).
    debits         numeric NOT NULL DEFAULT 0,
    credits        numeric NOT NULL DEFAULT 0,
    balance        numeric NOT NULL DEFAULT 0,
    entry_count    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, code),
    -- The last line of defence for allow_negative (the application checks under a row lock).
    CONSTRAINT ledger_accounts_no_negative CHECK (allow_negative OR balance >= 0)
) WITH (fillfactor = 70);  -- room for HOT updates of the totals
CREATE INDEX ledger_accounts_created ON ledger_accounts (tenant_id, created_at, id);

CREATE TABLE ledger_transactions (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    description text NOT NULL DEFAULT '',
    metadata    jsonb NOT NULL DEFAULT '{}',
    amount      numeric NOT NULL,            -- total of the debits, for filters
    posted_at   timestamptz NOT NULL,
    reverses    uuid,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, reverses) REFERENCES ledger_transactions (tenant_id, id)
);
CREATE UNIQUE INDEX ledger_transactions_reverses
    ON ledger_transactions (tenant_id, reverses) WHERE reverses IS NOT NULL;
CREATE INDEX ledger_transactions_posted ON ledger_transactions (tenant_id, posted_at, id);

CREATE TABLE ledger_entries (
    tenant_id      uuid NOT NULL,
    transaction_id uuid NOT NULL,
    seq            smallint NOT NULL,
    account_id     uuid NOT NULL,
    direction      text NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount         bigint NOT NULL CHECK (amount > 0),
    posted_at      timestamptz NOT NULL,
    entry_no       bigint NOT NULL,              -- 1, 2, ... per account, in posting order
    debits_after   numeric NOT NULL,
    credits_after  numeric NOT NULL,
    balance_after  numeric NOT NULL,             -- running balance (statements, as_of)
    PRIMARY KEY (tenant_id, transaction_id, seq),
    UNIQUE (tenant_id, account_id, entry_no),
    FOREIGN KEY (tenant_id, transaction_id) REFERENCES ledger_transactions (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES ledger_accounts (tenant_id, id)
);

CREATE TABLE ledger_idempotency_keys (
    tenant_id      uuid NOT NULL,
    key            text NOT NULL,
    request_hash   bytea NOT NULL,
    transaction_id uuid NOT NULL,
    status_code    smallint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- Transactions and entries are immutable: a correction is a reversing transaction.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger % are immutable; post a reversing transaction', TG_TABLE_NAME
        USING ERRCODE = '42501';
END
$$;
CREATE TRIGGER ledger_transactions_immutable BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
