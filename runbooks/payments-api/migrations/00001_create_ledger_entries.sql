-- +goose Up
CREATE TABLE ledger_entries (
    id           INTEGER PRIMARY KEY,
    account_id   VARCHAR(64) NOT NULL,
    amount_cents BIGINT      NOT NULL,
    currency     CHAR(3)     NOT NULL,
    created_at   TIMESTAMP   NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- +goose Down
DROP TABLE ledger_entries;
