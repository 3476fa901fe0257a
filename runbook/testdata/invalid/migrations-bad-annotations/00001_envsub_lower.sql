-- +goose Up
--+goose envsub on
SELECT '${HOME}';
-- +goose Down
SELECT 1;
