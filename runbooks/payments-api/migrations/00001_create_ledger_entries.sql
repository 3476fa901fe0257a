-- +goose Up
-- Builds on the platform's schema at version 0 (payments, idempotency_keys: created by the
-- platform, see internal/devstack/demoschema.sql). v2 books a ledger entry for every payment
-- it creates, in the same transaction; v1 does not know this table and keeps working.
CREATE TABLE ledger_entries (
    payment_id   VARCHAR(64) PRIMARY KEY,
    account_id   VARCHAR(64) NOT NULL,
    amount_cents BIGINT      NOT NULL,
    currency     CHAR(3)     NOT NULL,
    created_at   TIMESTAMP   NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- +goose Down
DROP TABLE ledger_entries;
