-- +goose Up
ALTER TABLE a ADD COLUMN b TEXT;

-- +goose Down
-- nothing to do here

