-- Issue 15 item 8: the reconciler claims due enrollments in (due_at,
-- enrollment_id) order, so that one batch is a contiguous range of
-- enrollment ids: its profile_items rows, their (profile_id, …,
-- enrollment_id) index entries and its reconcile_queue rows then land on
-- a few neighbouring B-tree pages instead of one random page each (at
-- 100,000 devices a batch of 1,000 random ids dirtied ~1,000 pages per
-- index, each written to the WAL and to the savepoint journal).
--
-- reconcile_queue becomes a WITHOUT ROWID table, clustered by
-- enrollment_id: as a rowid table its rows sat in marking order, so a
-- contiguous range of ids (a claim, and the batch's finish) touched a
-- random table page per row. The index on (due_at, enrollment_id) gives
-- the claim order without a sort and replaces the one on due_at alone
-- (DirtyCount's range uses its prefix). Nothing references this table.
-- PostgreSQL only swaps the index (its heap is not ordered by a key).
-- dialect: sqlite
CREATE TABLE reconcile_queue_0020 (
	enrollment_id TEXT PRIMARY KEY REFERENCES enrollments(id) ON DELETE CASCADE,
	due_at        INTEGER NOT NULL,
	verify        INTEGER NOT NULL DEFAULT 0,
	gen           INTEGER NOT NULL DEFAULT 1,
	claimed_by    TEXT NOT NULL DEFAULT '',
	claimed_until INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO reconcile_queue_0020 (enrollment_id, due_at, verify, gen, claimed_by, claimed_until)
	SELECT enrollment_id, due_at, verify, gen, claimed_by, claimed_until FROM reconcile_queue;
DROP TABLE reconcile_queue;
ALTER TABLE reconcile_queue_0020 RENAME TO reconcile_queue;
CREATE INDEX reconcile_queue_due_enrollment ON reconcile_queue(due_at, enrollment_id);
-- end dialect
