// Package sqlite opens Pomona's embedded store: one SQLite file (WAL mode,
// foreign keys on) through the pure-Go modernc.org/sqlite driver, so the
// binary needs no cgo and no database server. The queries are shared with
// the PostgreSQL backend (package sqlstore).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is SQLite's: ? placeholders, writers serialised on one
// connection with BEGIN IMMEDIATE, constraint errors by extended code.
var Dialect = sqlstore.Dialect{
	Name:            "sqlite",
	CacheStatements: true,
	GroupCommit:     true,
	Greatest:        "MAX",
	DetachHotReads:  true,
	// 2,000 enrollments per reconciler transaction (profiles.DefaultBatch:
	// 1,000). Each pass's claim and COMMIT go through the one writer, and
	// each commit makes every reader connection drop its page cache at
	// its next read (freeing it cost madvise calls in the allocator). One
	// profile assigned to 100,000 devices, CPU of the phase: 46.6 s in
	// passes of 1,000, 33.0 s in 2,000s, 34.8 s in 4,000s (the writer
	// 11.5 → 8.0 → 8.0 s; docs/benchmarks.md, "Session 9 — sqlassign"):
	// 2,000 keeps each transaction — which other writers wait behind —
	// half as long as 4,000 for the same saving. A pass's plan is held in
	// memory: a few MB (a SCEP profile's per-device command rows, ~2 KB
	// each, the largest).
	ReconcileBatch: 2000,
	// The reconciler's reads on the read pool, not in the claim's
	// transaction on the writer (Dialect.ClaimReadsInputs, false): the
	// one writer is the serial part of an assignment — every pass's
	// claim and batch, the push results, everyone else's writes wait
	// behind it — and reads on the writer lengthened it by what they
	// cost. On the readers they run beside the writer's next batch. At
	// 20,000 devices (docs/benchmarks.md, "Session 11 — sqlassign3"; two
	// runs beside the writer-side reads, load 16–46) the writer's CPU in
	// the phase fell 2.26 → 1.58 s and 2.37 → 1.82 s and the process's
	// did not rise (5.83 → 5.75 s, 6.87 → 5.98 s): the readers'
	// cache drops after the writer's commits ("Session 10 — sqlread")
	// cost 0.03–0.06 s there now that a pass is 2,000 enrollments.
	ClaimReadsInputs: false,
	// One statement per chunk of finished claims (Dialect.FinishByValues).
	FinishByValues: true,
	// One serving process per database file (Lock, taken by
	// open.Serving): the store remembers the webhook list.
	OneProcess: true,
	// Migration 0032's triggers count the writes a command-channel
	// sender's read depends on: the store remembers those reads
	// (sqlstore's authCache) and checks the count per request.
	AuthGeneration: true,
	Constraint: func(err error) error {
		var se *sqlite.Error
		if errors.As(err, &se) {
			switch se.Code() {
			case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
				return fmt.Errorf("%w: %v", store.ErrConflict, err)
			case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
				return fmt.Errorf("%w: %v", store.ErrInUse, err)
			}
		}
		return err
	},
}

// writerCache is the page cache of the one writer connection: 64 MiB
// (SQLite's default is 2 MiB). A bulk command to 100,000 devices inserts
// into every leaf page of the queue's two channel-ordered indexes; with
// the default cache the transaction spent most of its time re-reading
// (pread) and spilling (to the WAL, before its commit) the same pages.
// The cache holds only pages actually read, so a small database uses
// little of it; it is allocated outside the Go heap.
//
// temp_store(MEMORY), writer only: SQLite keeps the writer's statement
// journals and the group commit's savepoint journals (the original of
// every page a statement or savepoint changes, kept to undo it) in a temp
// file by default. A 1,000-device reconciler batch changes thousands of
// pages under a savepoint, and writing their originals to that file was
// 6 % of the server's CPU when one profile was assigned to 100,000
// devices (pwrite in subjournalPage). Those journals never need to
// survive a crash (the WAL does that), and they live no longer than one
// transaction, so their memory is bounded by the largest transaction.
// The cost: a sort that spills on the writer (CREATE INDEX in a
// migration over a large table) spills to memory too, for its duration.
const writerCache = "_pragma=cache_size(-65536)&_pragma=temp_store(MEMORY)"

// driverName is the database/sql driver Open uses: modernc.org/sqlite's,
// or in tests one that wraps it to count the statements a store call runs.
var driverName = "sqlite"

// Open opens (creating if needed) the database file at path and applies
// pending migrations.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: create directory for %s: %w", path, err)
		}
	}
	dsn := func(txlock string) string {
		q := []string{"_pragma=foreign_keys(1)", "_pragma=journal_mode(WAL)", "_pragma=busy_timeout(10000)",
			// FULL: in WAL mode every COMMIT fsyncs the WAL, so a write
			// is durable when it returns (group commit shares that fsync
			// among concurrent writers). Stated, not left to the
			// library's default. NORMAL would defer the fsync to the
			// next checkpoint: a power loss could drop acknowledged
			// results. OFF is never used.
			"_pragma=synchronous(FULL)", "_txlock=" + txlock}
		return "file:" + path + "?" + strings.Join(q, "&")
	}
	// Writes go through one connection (SQLite has one writer anyway:
	// queueing in Go beats spinning on SQLITE_BUSY), reads through a pool.
	w, err := sql.Open(driverName, dsn("immediate")+"&"+writerCache)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open(driverName, dsn("deferred"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// Every reader stays open: database/sql keeps only 2 idle connections
	// unless told, so with more than 2 concurrent reads each further
	// connection was closed after its statement and the next one opened
	// anew (the file, the WAL, the schema parsed, every statement
	// prepared again): ~260 connection opens in a 40-device `pomona bench`
	// (docs/benchmarks.md, session 6).
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	s := sqlstore.New(Dialect, w, r, path)
	if err := s.Migrate(ctx, migrations, "migrations"); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}
