-- +goose Up
CREATE TABLE c (id INTEGER);
-- +goose Down
DROP TABLE c;
