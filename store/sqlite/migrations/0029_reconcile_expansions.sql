-- Session 13 (lane pgassign5, issue 15 item 8): pending chunked markings
-- (the PostgreSQL migration of the same number has the reasons). SQLite
-- marks inline by default (Dialect.MarkChunk 0), so this table stays
-- empty unless a store is told to chunk (Store.SetMarkChunk).
CREATE TABLE reconcile_expansions (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	kind       TEXT NOT NULL,
	target     TEXT NOT NULL,
	due_at     INTEGER NOT NULL,
	after_id   TEXT NOT NULL,
	marked     INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
);
