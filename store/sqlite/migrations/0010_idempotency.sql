-- Idempotency keys of command creation (draft-ietf-httpapi-idempotency-key-header): written in the
-- transaction that queues the command, scoped to the API credential, kept until expires_at.
CREATE TABLE idempotency_keys (
	principal   TEXT NOT NULL,
	idem_key    TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	response    BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	PRIMARY KEY (principal, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
