-- +goose Up
CREATE TABLE ledger_entries (
    id           INTEGER PRIMARY KEY,
    account_id   VARCHAR(64) NOT NULL,
    amount_cents BIGINT      NOT NULL,
    currency     CHAR(3)     NOT NULL,
    -- memo is what v1 writes; v2 writes external_reference (00002) instead,
    -- and the contract step drops memo once v2 takes all traffic.
    memo         VARCHAR(256),
    created_at   TIMESTAMP   NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- +goose Down
DROP TABLE ledger_entries;
