// Package postgres opens Pomona's PostgreSQL store, for several instances
// sharing one database. The queries are shared with the embedded SQLite
// store (package sqlstore); read-modify-write transactions run
// SERIALIZABLE and are retried on conflict, so one-time values (SCEP
// challenges, TOTP steps, token bindings) are consumed exactly once and
// each queued command goes to one poll, whichever instance serves it.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is PostgreSQL's.
var Dialect = sqlstore.Dialect{
	Name:      "postgres",
	Numbered:  true,
	TxOptions: &sql.TxOptions{Isolation: sql.LevelSerializable},
	// A device's result: its reads decide writes of the rows read, or
	// lock them (sqlstore.Dialect.ResultTxOptions).
	ResultTxOptions: &sql.TxOptions{Isolation: sql.LevelRepeatableRead},
	ForUpdate:       " FOR UPDATE",
	// Reconciler claims: one statement, FOR UPDATE SKIP LOCKED
	// (sqlstore's claimDirtySkipLocked says why).
	SkipLocked: true,
	// Statistics for the claim's plan after a large marking
	// (sqlstore.Dialect.AnalyzeAfter).
	AnalyzeAfter: 1000,
	// A large change marks its devices 1,000 at a time in committed
	// chunks, the reconciler's claims marking the rest
	// (sqlstore.Dialect.MarkChunk): the passes start after the first
	// chunk instead of after one statement over every device.
	MarkChunk: 1000,
	// A chunk's range read walks enrollments_pkey, never a sort of the
	// whole table (sqlstore.Dialect.ChunkRangeByIndex).
	ChunkRangeByIndex: [2]string{"SET LOCAL enable_sort = off", "SET LOCAL enable_sort = on"},
	// A reconciler batch's write (ApplyReconcile) at READ COMMITTED. No
	// statement of it depends on an earlier read of the transaction: the
	// plan was made before it, from ReconcileInputs, under the batch's
	// claims (a retry wrote the same plan again). Its statements are
	// inserts of new rows (commands, queue rows, SCEP challenges: their
	// foreign-key checks lock the rows referenced), profile_items
	// upserts (ON CONFLICT DO UPDATE is insert-or-update at any
	// isolation), and updates and deletes of the batch's own rows whose
	// conditions PostgreSQL re-checks on the newest committed version
	// under the row's lock (a claim finished only if still held by this
	// holder at the claimed gen: a device marked again meanwhile keeps
	// its entry, released, due as marked). SERIALIZABLE added only
	// predicate locks: 1,000-row batches promote them to whole
	// relations (reconcile_queue, profile_items, queue), so four
	// workers' batches conflicted with each other and reran whole
	// batches ("Session 9 — pgassign", docs/benchmarks.md).
	ReconcileTxOptions: &sql.TxOptions{Isolation: sql.LevelReadCommitted},
	// One clock for every instance: a command enqueued after another
	// (through any instance) gets a later seq, unless the database
	// server's clock is stepped back in between.
	SeqClock: "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)",
	Greatest: "GREATEST",
	// pgx sends a []string as a text[] in binary: 100,000 channel ids are
	// one parameter of one statement.
	UnnestText: "unnest(CAST(? AS text[])) AS t(id)",
	// A single-channel enqueue is one statement (sqlstore.enqueueOneSQL).
	WritableCTE: true,
	// A reconciler batch's rows in array statements
	// (sqlstore.Dialect.ArrayBatches).
	ArrayBatches: true,
	// A device result's transaction with its BEGIN sent with its first
	// statement and its COMMIT with its last (pipeline).
	Pipeline: pipeline,
	Retryable: func(err error) bool {
		var pe *pgconn.PgError
		// serialization_failure, deadlock_detected
		return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
	},
	Constraint: func(err error) error {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			switch pe.Code {
			case "23505": // unique_violation
				return fmt.Errorf("%w: %v", store.ErrConflict, err)
			case "23503": // foreign_key_violation
				return fmt.Errorf("%w: %v", store.ErrInUse, err)
			}
		}
		return err
	},
}

// DefaultMaxConns bounds one instance's connections to PostgreSQL (open,
// and kept idle) unless the URL's pool_max_conns says otherwise.
const DefaultMaxConns = 20

// PoolMaxConnsParam is the database URL's query parameter that sets one
// instance's connection limit (postgres://…/pomona?pool_max_conns=40),
// 1 to 1,000; without it DefaultMaxConns. The name is pgxpool's for the
// same setting. Pomona takes it out of the URL before connecting
// (PostgreSQL would refuse it as an unknown run-time parameter).
const PoolMaxConnsParam = "pool_max_conns"

// poolMaxConns splits the pool_max_conns parameter off dbURL: the URL to
// connect with and the connection limit (DefaultMaxConns when absent). A
// value that is not a whole number in 1..1000 is an error naming it.
// Other forms (key=value connection strings) are left as they are.
func poolMaxConns(dbURL string) (string, int, error) {
	u, err := url.Parse(dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return dbURL, DefaultMaxConns, nil
	}
	q := u.Query()
	if !q.Has(PoolMaxConnsParam) {
		return dbURL, DefaultMaxConns, nil
	}
	v := q.Get(PoolMaxConnsParam)
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return "", 0, fmt.Errorf("postgres: %s=%q: want a whole number of connections from 1 to 1000", PoolMaxConnsParam, v)
	}
	q.Del(PoolMaxConnsParam)
	u.RawQuery = q.Encode()
	return u.String(), n, nil
}

// Open connects to the database at dbURL (postgres://…) and applies
// pending migrations. Instances starting together apply each migration once.
// The URL's pool_max_conns (PoolMaxConnsParam) sets how many connections
// the instance opens at most (default DefaultMaxConns).
//
// It also keeps one more connection listening for changes of the webhooks
// table (webhookListener): while it listens, an event without a
// subscriber costs no statement.
func Open(ctx context.Context, dbURL string) (*sqlstore.Store, error) {
	s, _, err := open(ctx, dbURL)
	return s, err
}

// open is Open, also returning the store's webhook change listener.
func open(ctx context.Context, dbURL string) (*sqlstore.Store, *webhookListener, error) {
	connURL, maxConns, err := poolMaxConns(dbURL)
	if err != nil {
		return nil, nil, err
	}
	db, err := sql.Open("pgx", connURL)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: %w", err)
	}
	// As many idle connections kept as may be open: with fewer, every
	// burst above the idle limit (a profile wave: 32 requests in flight)
	// closed the connections it returned and opened new ones a moment
	// later — a PostgreSQL backend started per connection, every
	// statement parsed and planned anew on it (54 new sessions per 600
	// wave round trips, docs/benchmarks.md "Session 11 — pgwave"). Idle
	// connections still close after ConnMaxIdleTime.
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("postgres: cannot reach %s: %w (check --db and that the server runs)", Redact(dbURL), err)
	}
	s := sqlstore.New(Dialect, db, db, Redact(dbURL))
	// Concurrent first starts: serialise migrations with an advisory lock.
	conn, err := db.Conn(ctx)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(7263511)`); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("postgres: migration lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7263511)`)
	if err := s.Migrate(ctx, migrations, "migrations"); err != nil {
		s.Close()
		return nil, nil, err
	}
	// After the migrations: the trigger that notifies exists (0031).
	l, err := startWebhookListener(connURL, s)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	s.OnClose(l.stop)
	return s, l, nil
}

// Redact hides the password of a database URL for logs.
func Redact(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}
