-- Issue 15 item 8: the reconciler claims due enrollments in (due_at,
-- enrollment_id) order, so that one batch is a contiguous range of
-- enrollment ids: its profile_items rows, their (profile_id, …,
-- enrollment_id) index entries and its reconcile_queue rows then land on
-- a few neighbouring B-tree pages instead of one random page each (at
-- 100,000 devices a batch of 1,000 random ids dirtied ~1,000 pages per
-- index, each written to the WAL and to the savepoint journal). This
-- index gives that order without a sort and replaces the one on due_at
-- alone (DirtyCount's range uses its prefix).
-- (SQLite also rebuilds the table WITHOUT ROWID, clustered by enrollment id.)
-- dialect: postgres
CREATE INDEX reconcile_queue_due_enrollment ON reconcile_queue(due_at, enrollment_id);
DROP INDEX reconcile_queue_due;
-- end dialect
