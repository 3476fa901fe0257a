-- +goose Up
-- +goose StatementBegn
SELECT 1;
-- +goose Down
SELECT 1;
