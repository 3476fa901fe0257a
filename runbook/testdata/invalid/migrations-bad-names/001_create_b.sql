-- +goose Up
CREATE TABLE b (id INTEGER);
-- +goose Down
DROP TABLE b;
