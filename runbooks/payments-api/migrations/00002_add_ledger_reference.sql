-- +goose Up
-- The caller's reference of a payment: v1 keeps it in payments.memo, v2 here. Nullable so
-- that the previous version, which does not write it, keeps working.
ALTER TABLE payments ADD COLUMN external_reference VARCHAR(128);

-- +goose Down
ALTER TABLE payments DROP COLUMN external_reference;
