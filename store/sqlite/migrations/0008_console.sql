-- Web-console administrators and their sessions. Secrets are hashed
-- (setup tokens, session ids) or sealed (TOTP secrets).
CREATE TABLE admins (
	id               TEXT PRIMARY KEY,
	email            TEXT NOT NULL UNIQUE,
	name             TEXT NOT NULL DEFAULT '',
	role             TEXT NOT NULL,
	password_hash    TEXT NOT NULL DEFAULT '',
	totp_secret      BLOB,
	totp_last_step   INTEGER NOT NULL DEFAULT 0,
	enabled          INTEGER NOT NULL DEFAULT 1,
	setup_hash       BLOB UNIQUE,
	setup_expires_at INTEGER NOT NULL DEFAULT 0,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	last_sign_in_at  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE admin_sessions (
	hash         BLOB PRIMARY KEY,
	admin_id     TEXT NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	remote       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX admin_sessions_admin ON admin_sessions(admin_id);

-- The dashboard's recent command errors.
CREATE INDEX queue_status_updated ON queue(status, updated_at);
CREATE INDEX enrollments_enrolled_at ON enrollments(enrolled_at);
