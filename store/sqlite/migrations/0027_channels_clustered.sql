-- Issue 15 item 8 (Session 11, lane sqlassign3): channels clustered by id.
--
-- A channel's id begins with its enrollment's (mdmservice.NewChannelID),
-- and a reconciler batch is a contiguous range of enrollment ids, but as a
-- rowid table channels kept its rows in insertion order: a batch's 2,000
-- device channels sat on ~2,000 random pages. Every fan-out's push-result
-- hints (SetPushResults: last_push_at) dirtied one page per channel —
-- each written to the WAL and again at the checkpoint — and the
-- reconciler's input reads faulted one page per device. WITHOUT ROWID
-- stores the rows in the primary key's order: a batch's channels share
-- ~1/15 of the pages. Rows from before keep their ids (random ones stay
-- scattered, as before).
--
-- The table is rebuilt the way SQLite documents for such changes, with
-- foreign keys off on the writer's connection outside the transaction
-- (the marker below; Store.Migrate): with them on, dropping the old
-- table would cascade-delete every queue row (queue.channel_id
-- REFERENCES channels ON DELETE CASCADE) and renaming it would make queue
-- refer to the old table. PRAGMA foreign_key_check runs before the
-- commit. Columns keep their order (copy and backup use SELECT *).
-- PostgreSQL needs nothing: its heap is not ordered by a key, and its
-- push-result hints are one statement per fan-out.
-- migrate: foreign_keys off
-- dialect: sqlite
CREATE TABLE channels_0027 (
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
) WITHOUT ROWID;
INSERT INTO channels_0027 (id, enrollment_ref, kind, enrollment_user_id, user_short_name, user_long_name, push_token, push_magic,
	push_dead, last_push_at, last_seen_at, created_at, updated_at)
	SELECT id, enrollment_ref, kind, enrollment_user_id, user_short_name, user_long_name, push_token, push_magic,
	push_dead, last_push_at, last_seen_at, created_at, updated_at FROM channels ORDER BY id;
DROP TABLE channels;
ALTER TABLE channels_0027 RENAME TO channels;
-- end dialect
