-- +goose Up
CREATE TABLE a (id INTEGER);

-- +goose Down
DROP TABLE a;
