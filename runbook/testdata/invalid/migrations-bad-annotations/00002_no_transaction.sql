-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY a_id ON a (id);
-- +goose Down
DROP INDEX a_id;
