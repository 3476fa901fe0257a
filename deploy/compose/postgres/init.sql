-- Runs once, when the PostgreSQL volume is empty. Temporal's own databases
-- (temporal, temporal_visibility) are created by temporalio/auto-setup; this adds
-- the application database the payments-api runbook migrates.
CREATE ROLE rollbook LOGIN PASSWORD 'rollbook';
CREATE DATABASE payments OWNER rollbook;
