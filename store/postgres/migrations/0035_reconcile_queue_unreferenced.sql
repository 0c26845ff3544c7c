-- Session 15 (lane pgassign7, issue 15 item 8 / issue 17): reconcile_queue
-- no longer has a foreign key to enrollments on PostgreSQL. Its check was
-- the dearest per-row cost left in marking a large change: every row a
-- marking inserts ran the RI trigger (a SELECT … FOR KEY SHARE of the
-- enrollment: a row lock, i.e. a heap write and a WAL record on the
-- enrollments page) — 20,000 marked rows took 1.44–1.95 s with the key and
-- 0.32–0.79 s without it ("Session 14 — pgassign6", docs/benchmarks.md).
--
-- What the key gave is kept where it matters:
-- * Deleting an enrollment (DeleteUser, DeleteTenant: cascades from users
--   and tenants, or a hand-written DELETE) deletes its queue row: the
--   statement trigger below, which sees every deleted enrollment of the
--   statement (cascaded deletes included) and deletes their rows by the
--   primary key. Contract test: storetest "DeletedEnrollmentsLeaveNoQueue".
-- * What the key prevented and nothing prevents now: a marking whose
--   snapshot still saw an enrollment that a concurrent, not yet committed
--   transaction deletes writes a row for it (the key made that marking
--   wait and fail). Such an orphan is harmless: the reconciler claims it,
--   finds no input (ReconcileInputs reads enrollments by key) and the
--   claim's finish deletes it (test: TestOrphanQueueRowIsDrained); a
--   store copy (CopyTo) leaves orphans behind (copyFilter), so SQLite's
--   key never sees one.
-- SQLite keeps its key (its check is one b-tree probe without a lock
-- write); its migration of this number is empty.
-- dialect: postgres
ALTER TABLE reconcile_queue DROP CONSTRAINT reconcile_queue_enrollment_id_fkey;
CREATE FUNCTION pomona_reconcile_queue_gone() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	DELETE FROM reconcile_queue q USING gone g WHERE q.enrollment_id = g.id;
	RETURN NULL;
END
$fn$;
CREATE TRIGGER enrollments_reconcile_queue AFTER DELETE ON enrollments
	REFERENCING OLD TABLE AS gone
	FOR EACH STATEMENT EXECUTE FUNCTION pomona_reconcile_queue_gone();
-- end dialect
