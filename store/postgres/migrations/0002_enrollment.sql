-- PostgreSQL translation of ../../sqlite/migrations/0002_enrollment.sql: BIGINT for the
-- integer columns (times are Unix microseconds), BYTEA for blobs. Keep the two in step.
-- Account-driven enrollment: access tokens, enrollments with their
-- one-time SCEP challenges, issued identity certificates, sign-in rate
-- limits, and TOTP replay protection.

-- The last TOTP time step accepted for a user: a code is usable once.
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;

-- Access tokens handed to devices through the sign-in callback. Only the
-- SHA-256 of the token is kept. enrollment_id binds a token to the first
-- enrollment that uses it on the MDM channel.
CREATE TABLE access_tokens (
	hash          BYTEA PRIMARY KEY,
	user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	created_at    BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL,
	enrollment_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX access_tokens_user ON access_tokens(user_id);

-- An enrollment starts when a profile is handed out (status pending) and
-- becomes enrolled once the device authenticates on the MDM channel.
CREATE TABLE enrollments (
	id                TEXT PRIMARY KEY,
	tenant_id         TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	token_hash        BYTEA NOT NULL,
	platform          TEXT NOT NULL,
	product           TEXT NOT NULL DEFAULT '',
	os_version        TEXT NOT NULL DEFAULT '',
	build_version     TEXT NOT NULL DEFAULT '',
	language          TEXT NOT NULL DEFAULT '',
	machine_info      BYTEA,
	device_signature  TEXT NOT NULL DEFAULT '',
	profile_id        TEXT NOT NULL DEFAULT '',
	status            TEXT NOT NULL,
	created_at        BIGINT NOT NULL,
	updated_at        BIGINT NOT NULL
);
CREATE INDEX enrollments_user ON enrollments(user_id);

-- One-time SCEP challenges, stored hashed, each bound to one enrollment.
CREATE TABLE scep_challenges (
	hash          BYTEA PRIMARY KEY,
	enrollment_id TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
	expires_at    BIGINT NOT NULL,
	used_at       BIGINT NOT NULL DEFAULT 0
);

-- Identity certificates issued by Pomona's CA, each tied to its enrollment.
CREATE TABLE identity_certs (
	serial        TEXT PRIMARY KEY,
	enrollment_id TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
	sha256        BYTEA NOT NULL UNIQUE,
	not_before    BIGINT NOT NULL,
	not_after     BIGINT NOT NULL,
	issued_at     BIGINT NOT NULL,
	renewed_from  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX identity_certs_enrollment ON identity_certs(enrollment_id);

-- Fixed-window failure counters for sign-in rate limiting.
CREATE TABLE rate_limits (
	key          TEXT PRIMARY KEY,
	count        BIGINT NOT NULL,
	window_start BIGINT NOT NULL
);
