-- +goose Up
-- Contract: v1 wrote the caller's reference into memo, v2 writes external_reference; once v2
-- serves all traffic nothing writes memo any more. Move what v1 wrote to where v2 reads it,
-- then drop memo. Dropping the column cannot be undone, so the step that runs this is
-- irreversible: it is the deployment's point of no return.
UPDATE payments SET external_reference = memo WHERE external_reference IS NULL AND memo IS NOT NULL;
ALTER TABLE payments DROP COLUMN memo;
