-- +goose Up
-- +goose ENVSUB ON
-- goose would replace the variable below with the worker's DSN, password
-- included, and the error would carry it into workflow history.
SELECT * FROM "${ROLLBOOK_PG_DSN}";
-- +goose Down
SELECT 1;
