-- +goose Up
CREATE INDEX ledger_entries_account_id_idx ON ledger_entries (account_id, created_at);

-- +goose Down
DROP INDEX ledger_entries_account_id_idx;
