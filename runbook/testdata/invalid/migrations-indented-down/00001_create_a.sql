-- +goose Up
CREATE TABLE a (id INTEGER PRIMARY KEY);

  -- +goose Down
DROP TABLE a;
