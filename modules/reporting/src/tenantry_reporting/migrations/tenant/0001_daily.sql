-- Daily summary per account and currency, fed by ledger.TransactionPosted.v1.
CREATE TABLE reporting_daily (
    tenant_id    uuid NOT NULL,
    day          date NOT NULL,
    account_id   uuid NOT NULL,
    account_code text NOT NULL,
    currency     text NOT NULL,
    debit        bigint NOT NULL DEFAULT 0,
    credit       bigint NOT NULL DEFAULT 0,
    entries      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, account_id, currency)
);
