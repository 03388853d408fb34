-- Amounts, transaction totals and account totals stay within a signed 64-bit integer
-- (-(2^63-1) .. 2^63-1), the documented range. The posting code refuses a transaction that
-- would leave it (422 amount-out-of-range); these CHECKs are the last line of defence.
-- NOT VALID + VALIDATE: the scan of existing rows does not block on a long exclusive lock
-- when this runs on its own; inside the migration's transaction it is still one pass.

ALTER TABLE ledger_accounts
    ADD CONSTRAINT ledger_accounts_totals_in_range CHECK (
        debits BETWEEN 0 AND 9223372036854775807
        AND credits BETWEEN 0 AND 9223372036854775807
        AND balance BETWEEN -9223372036854775807 AND 9223372036854775807
    ) NOT VALID;
ALTER TABLE ledger_accounts VALIDATE CONSTRAINT ledger_accounts_totals_in_range;

ALTER TABLE ledger_transactions
    ADD CONSTRAINT ledger_transactions_amount_in_range CHECK (
        amount BETWEEN 1 AND 9223372036854775807
    ) NOT VALID;
ALTER TABLE ledger_transactions VALIDATE CONSTRAINT ledger_transactions_amount_in_range;
