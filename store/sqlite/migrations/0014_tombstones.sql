-- Endings: what is left of a device's enrollment after its user (or the
-- user's tenant) was deleted. The enrollment, its certificates and its
-- queue go with the user (ON DELETE CASCADE); one tombstone per identity
-- certificate it held stays, so a later request signed with that
-- certificate is answered com.apple.unrecognized.device (the device
-- removes its profile) instead of a bare 403. No foreign keys: the rows
-- it names are gone. Purged after the retention (serve --tombstone-retention).
CREATE TABLE tombstones (
	serial              TEXT PRIMARY KEY,
	sha256              BLOB NOT NULL,
	enrollment_id       TEXT NOT NULL,
	apple_enrollment_id TEXT NOT NULL DEFAULT '',
	tenant_id           TEXT NOT NULL,
	user_id             TEXT NOT NULL,
	reason              TEXT NOT NULL,
	ended_at            INTEGER NOT NULL
);
CREATE INDEX tombstones_sha256 ON tombstones(sha256);
CREATE INDEX tombstones_ended_at ON tombstones(ended_at);
