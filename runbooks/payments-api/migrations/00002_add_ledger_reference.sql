-- +goose Up
-- Nullable so that the previous version, which does not write it, keeps working.
ALTER TABLE ledger_entries ADD COLUMN external_reference VARCHAR(128);

-- +goose Down
ALTER TABLE ledger_entries DROP COLUMN external_reference;
