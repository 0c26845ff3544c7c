-- PostgreSQL translation of ../../sqlite/migrations/0004_inventory.sql: BIGINT for the
-- integer columns (times are Unix microseconds), BYTEA for blobs. Keep the two in step.
-- What the device's answers revealed (JSON by section: device_information,
-- security_info, profiles, certificates, managed_apps), with their times.
ALTER TABLE enrollments ADD COLUMN inventory BYTEA;
