-- Who a request speaks for (issue 11).
--
-- Channel ownership: a channel is identified by its enrollment row, its
-- kind and Apple's EnrollmentUserID (empty on the device channel), never by
-- a string the device chose. Its id is Pomona's (random for new channels;
-- rows from before keep theirs, nothing looks them up by it on the MDM
-- path any more). SQLite cannot add a CHECK to an existing table, so
-- channels and queue are rebuilt: copied aside, re-created, copied back.
CREATE TABLE channels_0008 AS SELECT * FROM channels;
CREATE TABLE queue_0008 AS SELECT * FROM queue;
DROP TABLE queue;
DROP TABLE channels;

CREATE TABLE channels (
	id                 TEXT PRIMARY KEY,
	enrollment_ref     TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
	kind               TEXT NOT NULL,
	enrollment_user_id TEXT NOT NULL DEFAULT '',
	user_short_name    TEXT NOT NULL DEFAULT '',
	user_long_name     TEXT NOT NULL DEFAULT '',
	push_token         BLOB,
	push_magic         TEXT NOT NULL DEFAULT '',
	push_dead          INTEGER NOT NULL DEFAULT 0,
	last_push_at       INTEGER NOT NULL DEFAULT 0,
	last_seen_at       INTEGER NOT NULL DEFAULT 0,
	created_at         INTEGER NOT NULL,
	updated_at         INTEGER NOT NULL,
	-- One device channel per enrollment, one user channel per user of it.
	CONSTRAINT channels_owner UNIQUE (enrollment_ref, kind, enrollment_user_id),
	-- Device and user channel identities cannot collide.
	CONSTRAINT channels_kind CHECK ((kind = 'device' AND enrollment_user_id = '') OR (kind = 'user' AND enrollment_user_id <> ''))
);

CREATE TABLE queue (
	channel_id   TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
	command_uuid TEXT NOT NULL REFERENCES commands(uuid) ON DELETE CASCADE,
	seq          INTEGER NOT NULL,
	status       TEXT NOT NULL,
	result       BLOB,
	sent_at      INTEGER NOT NULL DEFAULT 0,
	updated_at   INTEGER NOT NULL,
	PRIMARY KEY (channel_id, command_uuid)
);
CREATE INDEX queue_next ON queue(channel_id, status, seq);
CREATE INDEX queue_status_updated ON queue(status, updated_at);

-- A user channel's old id was EnrollmentID/EnrollmentUserID, with the
-- enrollment's bound EnrollmentID in front.
INSERT INTO channels (id, enrollment_ref, kind, enrollment_user_id, user_short_name, user_long_name, push_token, push_magic,
	push_dead, last_push_at, last_seen_at, created_at, updated_at)
	SELECT c.id, c.enrollment_ref, c.kind,
		CASE WHEN c.kind = 'user' THEN substr(c.id, length(COALESCE(e.apple_enrollment_id, '')) + 2) ELSE '' END,
		c.user_short_name, c.user_long_name, c.push_token, c.push_magic, c.push_dead, c.last_push_at, c.last_seen_at,
		c.created_at, c.updated_at
	FROM channels_0008 c JOIN enrollments e ON e.id = c.enrollment_ref;
INSERT INTO queue (channel_id, command_uuid, seq, status, result, sent_at, updated_at)
	SELECT channel_id, command_uuid, seq, status, result, sent_at, updated_at FROM queue_0008;
DROP TABLE queue_0008;
DROP TABLE channels_0008;

-- Terminal endings: when an enrollment ends its identity certificates and
-- access tokens are revoked (when, and why).
ALTER TABLE identity_certs ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE identity_certs ADD COLUMN revoked_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE access_tokens ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX access_tokens_enrollment ON access_tokens(enrollment_id);

-- Enrollments that ended before this migration end the same way.
UPDATE identity_certs SET revoked_at = (SELECT CASE WHEN e.unenrolled_at > 0 THEN e.unenrolled_at ELSE e.updated_at END FROM enrollments e WHERE e.id = identity_certs.enrollment_id),
	revoked_reason = 'the enrollment had ended'
	WHERE enrollment_id IN (SELECT id FROM enrollments WHERE status = 'unenrolled');
UPDATE access_tokens SET revoked_at = (SELECT CASE WHEN e.unenrolled_at > 0 THEN e.unenrolled_at ELSE e.updated_at END FROM enrollments e WHERE e.id = access_tokens.enrollment_id)
	WHERE enrollment_id IN (SELECT id FROM enrollments WHERE status = 'unenrolled');
