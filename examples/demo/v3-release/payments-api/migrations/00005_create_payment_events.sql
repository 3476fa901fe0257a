-- +goose Up
-- The next release's own migration, as its pull request adds it to
-- runbooks/payments-api/migrations (make demo deploys v3 with the runbook plus this file).
-- v3 records a "created" event for every payment it creates, in the payment's transaction.
-- An expand migration like the others: a new table that v2 does not know, so v2 keeps
-- working on it, and v3 writes it only where it exists.
CREATE TABLE payment_events (
    payment_id   VARCHAR(64) NOT NULL,
    event        VARCHAR(32) NOT NULL,
    amount_cents BIGINT      NOT NULL,
    currency     CHAR(3)     NOT NULL,
    written_by   VARCHAR(32) NOT NULL,
    created_at   TIMESTAMP   NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (payment_id, event)
);

-- +goose Down
-- Destroys the events; a rollback with onRollback: archive copies them into
-- rollbook_archive first (docs/archive.md).
DROP TABLE payment_events;
