-- PostgreSQL translation of ../../sqlite/migrations/0003_mdm.sql: BIGINT for the
-- integer columns (times are Unix microseconds), BYTEA for blobs. Keep the two in step.
-- The MDM channel: Apple's EnrollmentID bound at Authenticate, device and
-- user channels with their push tokens, and the command queue.

ALTER TABLE enrollments ADD COLUMN apple_enrollment_id TEXT;
ALTER TABLE enrollments ADD COLUMN device_name TEXT NOT NULL DEFAULT '';
ALTER TABLE enrollments ADD COLUMN model TEXT NOT NULL DEFAULT '';
ALTER TABLE enrollments ADD COLUMN model_name TEXT NOT NULL DEFAULT '';
ALTER TABLE enrollments ADD COLUMN enrolled_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE enrollments ADD COLUMN unenrolled_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE enrollments ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX enrollments_apple_id ON enrollments(apple_enrollment_id);

-- One row per channel: the device channel (id = EnrollmentID) and, on a
-- Mac, user channels (id = EnrollmentID/EnrollmentUserID).
CREATE TABLE channels (
	id              TEXT PRIMARY KEY,
	enrollment_ref  TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
	kind            TEXT NOT NULL,
	user_short_name TEXT NOT NULL DEFAULT '',
	user_long_name  TEXT NOT NULL DEFAULT '',
	push_token      BYTEA,
	push_magic      TEXT NOT NULL DEFAULT '',
	push_dead       BIGINT NOT NULL DEFAULT 0,
	last_push_at    BIGINT NOT NULL DEFAULT 0,
	last_seen_at    BIGINT NOT NULL DEFAULT 0,
	created_at      BIGINT NOT NULL,
	updated_at      BIGINT NOT NULL
);
CREATE INDEX channels_enrollment ON channels(enrollment_ref);

CREATE TABLE commands (
	uuid         TEXT PRIMARY KEY,
	request_type TEXT NOT NULL,
	payload      BYTEA NOT NULL,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL DEFAULT 0,
	created_by   TEXT NOT NULL DEFAULT ''
);

-- The queue: one row per command and channel, delivered in seq order.
CREATE TABLE queue (
	channel_id   TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
	command_uuid TEXT NOT NULL REFERENCES commands(uuid) ON DELETE CASCADE,
	seq          BIGINT NOT NULL,
	status       TEXT NOT NULL,
	result       BYTEA,
	sent_at      BIGINT NOT NULL DEFAULT 0,
	updated_at   BIGINT NOT NULL,
	PRIMARY KEY (channel_id, command_uuid)
);
CREATE INDEX queue_next ON queue(channel_id, status, seq);
