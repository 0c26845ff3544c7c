-- PostgreSQL translation of ../../sqlite/migrations/0008_console.sql.
-- Web-console administrators and their sessions. Secrets are hashed
-- (setup tokens, session ids) or sealed (TOTP secrets).
CREATE TABLE admins (
	id               TEXT PRIMARY KEY,
	email            TEXT NOT NULL UNIQUE,
	name             TEXT NOT NULL DEFAULT '',
	role             TEXT NOT NULL,
	password_hash    TEXT NOT NULL DEFAULT '',
	totp_secret      BYTEA,
	totp_last_step   BIGINT NOT NULL DEFAULT 0,
	enabled          BIGINT NOT NULL DEFAULT 1,
	setup_hash       BYTEA UNIQUE,
	setup_expires_at BIGINT NOT NULL DEFAULT 0,
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL,
	last_sign_in_at  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE admin_sessions (
	hash         BYTEA PRIMARY KEY,
	admin_id     TEXT NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
	created_at   BIGINT NOT NULL,
	last_seen_at BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	remote       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX admin_sessions_admin ON admin_sessions(admin_id);

-- The dashboard's recent command errors.
CREATE INDEX queue_status_updated ON queue(status, updated_at);
CREATE INDEX enrollments_enrolled_at ON enrollments(enrolled_at);
