-- +goose Up
CREATE INDEX a_id ON a (id);

-- +goose Down
DROP INDEX a_id;
