-- +goose Up
-- Contract: v1 wrote memo; once v2 serves all traffic nothing reads it.
-- Dropping it loses its data, so the step that runs this is irreversible:
-- it is the deployment's point of no return.
ALTER TABLE ledger_entries DROP COLUMN memo;
