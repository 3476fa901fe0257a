-- Runs once, when the PostgreSQL volume is empty. Temporal's own databases
-- (temporal, temporal_visibility) are created by temporalio/auto-setup; this adds
-- the application database the payments-api runbook migrates and the demo API writes,
-- with the platform's schema at goose version 0 (payments, idempotency_keys), owned by
-- rollbook so that its migrations can alter it.
CREATE ROLE rollbook LOGIN PASSWORD 'rollbook';
CREATE DATABASE payments OWNER rollbook;
\connect payments
SET ROLE rollbook;

-- The statements below are internal/devstack/demoschema.sql, verbatim (deploy/compose's
-- test checks it).
-- The payments database as it exists before any rollbook migration (goose version 0): the
-- platform's own schema, created by the dev stack at stack-up (and by the compose file's
-- PostgreSQL init script), the way a real platform already has tables before it adopts a
-- deployment tool. runbooks/payments-api/migrations build on it.
--
-- payments is where both versions of the demo API write; idempotency_keys is where they
-- remember what they answered to a request with an Idempotency-Key. Both live in the shared
-- database, so the stable and the canary version agree on every key.

CREATE TABLE IF NOT EXISTS payments (
    id           VARCHAR(64)  PRIMARY KEY,
    account_id   VARCHAR(64)  NOT NULL,
    amount_cents BIGINT       NOT NULL,
    currency     CHAR(3)      NOT NULL,
    -- memo is where v1 keeps the caller's reference; v2 keeps it in external_reference (added by
    -- the expand migration 00002), and the contract migration moves memo there and drops it.
    memo         VARCHAR(256),
    status       VARCHAR(16)  NOT NULL DEFAULT 'pending',
    created_at   TIMESTAMPTZ  NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS payments_created_at_idx ON payments (created_at);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    -- Stripe scopes keys per API account; the demo has one caller, so the key alone.
    key          VARCHAR(255) PRIMARY KEY,
    -- sha256 of method, path and body: the same key with another request is refused (422).
    request_hash CHAR(64)     NOT NULL,
    payment_id   VARCHAR(64)  NOT NULL,
    -- The answer given the first time (its body byte for byte), replayed to every retry.
    status_code  INTEGER      NOT NULL,
    response     TEXT         NOT NULL,
    created_at   TIMESTAMPTZ  NOT NULL DEFAULT now()
);
