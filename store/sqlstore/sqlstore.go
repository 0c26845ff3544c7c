// Package sqlstore implements store.Store in portable SQL for both
// backends: SQLite (the embedded default) and PostgreSQL (several
// instances on one database). The backends differ only in a Dialect:
// placeholders, how transactions are isolated and retried, and how
// constraint failures are reported. Each backend package opens its
// connections and applies its own migrations with Migrate.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Dialect is what differs between backends.
type Dialect struct {
	Name string // "sqlite" or "postgres"
	// Numbered placeholders ($1, $2, …) instead of ?.
	Numbered bool
	// TxOptions isolates read-modify-write transactions. SQLite serialises
	// writers (BEGIN IMMEDIATE on a single connection); PostgreSQL runs
	// them SERIALIZABLE and retries when it reports a conflict.
	TxOptions *sql.TxOptions
	// ResultTxOptions isolates a device result's transaction
	// (RecordResultNext), nil: TxOptions. PostgreSQL runs it REPEATABLE
	// READ: each of its reads decides a write of the row it read (the
	// queue row, the enrollment's inventory, the profile item) or locks
	// what it read (ForUpdate), so first-updater-wins makes a concurrent
	// change of any of them a serialization failure and a retry, as
	// SERIALIZABLE would; what it does not take are SERIALIZABLE's
	// predicate locks, which at a wave's 32 answers in flight made page
	// neighbours (time-ordered command rows, a page of queue rows)
	// conflict: ~900–1,200 serialization failures per 600 round trips
	// of a 20,000-device wave ("Session 8 — pgwave", docs/benchmarks.md).
	ResultTxOptions *sql.TxOptions
	// ForUpdate ends a SELECT whose rows the transaction goes on to write
	// from what it read (" FOR UPDATE" on PostgreSQL: under REPEATABLE
	// READ a row changed or deleted since the snapshot is then a
	// serialization failure at the read, not a write that brings back a
	// deleted row); empty where one writer serialises transactions
	// (SQLite).
	ForUpdate string
	// Retryable reports a transaction to run again (serialization failure,
	// deadlock).
	Retryable func(error) bool
	// Constraint maps a driver error to store.ErrConflict (unique) or
	// store.ErrInUse (foreign key), or returns it unchanged.
	Constraint func(error) error
	// DetachHotReads runs the short reads of the MDM and API hot paths on
	// the read pool without the request's cancellation (Store.hot):
	// DeviceRequest's read (every MDM request), NextCommand's read of the
	// next command, and an API request's key, enrollment and channels
	// reads and the webhook subscriber read of a device event. With a
	// context that can be cancelled, database/sql starts a goroutine to
	// watch it for the row set and modernc's driver a second one (and
	// installs a progress handler) to interrupt SQLite: per read two
	// goroutine starts and wake-ups, a WithCancel and a channel, ~4 % of a
	// poll's server CPU in a profile of `pomona serve` ("Session 9 —
	// edge", docs/benchmarks.md), to be able to interrupt a primary-key
	// read of ~20 µs. SQLite's WAL readers never wait for the writer, so
	// such a read cannot hang on a lock; PostgreSQL's reads cross a
	// network and keep their cancellation (false).
	DetachHotReads bool
	// CacheStatements keeps prepared statements of repeated queries
	// (SQLite: preparing costs as much as running a simple query; pgx
	// caches them per connection itself).
	CacheStatements bool
	// GroupCommit runs the write transactions of concurrent callers in
	// one database transaction with one durable COMMIT (groupcommit.go);
	// for a backend with a single writer connection (SQLite).
	GroupCommit bool
	// SeqClock is an SQL expression for the current time in microseconds
	// on the database server, giving queue rows their seq (mdm.go); empty:
	// the store's own counter (one process writes: SQLite).
	SeqClock string
	// Greatest names the scalar maximum function (GREATEST; SQLite's is
	// MAX with two arguments).
	Greatest string
	// UnnestText is a table expression of one column, id, over one
	// parameter holding a []string (PostgreSQL: unnest of a text[]): a
	// bulk enqueue then inserts all its queue rows in one statement with
	// one parameter, not in batches of enqueueBatch rows of five
	// parameters each. Empty: batches.
	UnnestText string
	// ArrayBatches writes a reconciler batch (ApplyReconcile) with array
	// parameters (PostgreSQL: pgx sends a []string as text[] and an
	// []int64 as bigint[]): its queue rows and profile items are each
	// one INSERT … SELECT FROM unnest(…) per round, its claims are
	// finished with one statement per due time (enrollment_id = ANY(…),
	// the claimed generations one jsonb parameter), and ReconcileInputs
	// reads by arrays and probes each device channel by key (a LATERAL
	// subquery: no plan that depends on statistics a bulk load has not
	// given yet). false: multi-row VALUES
	// and OR-lists of (enrollment_id = ? AND gen = ?) in chunks (SQLite
	// has no array type). A 200-pair OR-list cost PostgreSQL tens of
	// milliseconds to plan and to run per statement, and a 500-row
	// VALUES list as much to plan ("Session 10 — pgassign2",
	// docs/benchmarks.md).
	ArrayBatches bool
	// SkipLocked claims reconciler work (ClaimDirty) with one
	// autocommitted statement at READ COMMITTED: the due rows are picked
	// in claim order FOR UPDATE SKIP LOCKED and updated in the same
	// statement (PostgreSQL). false: a SELECT and an UPDATE in a write
	// transaction (SQLite: one writer serialises the claimers).
	SkipLocked bool
	// AnalyzeAfter: after a transaction that added at least this many
	// rows to reconcile_queue in one statement (a profile assigned to a
	// large group), the store runs ANALYZE reconcile_queue before it
	// returns; 0: never (SQLite plans the claim by its index without
	// statistics). PostgreSQL's planner, without statistics of the new
	// rows, estimated a 20,000-row backlog at 2,015 rows (a third of a
	// third for the two inequalities) and planned every claim as a
	// sequential scan and sort of the whole backlog; with statistics it
	// walks reconcile_queue_due_enrollment. Autovacuum analyzes only
	// after its naptime (a minute), when the backlog is drained.
	// PostgreSQL's manual: "Run ANALYZE Afterwards" (Populating a
	// Database).
	AnalyzeAfter int64
	// ReconcileTxOptions isolates a reconciler batch's write
	// (ApplyReconcile); nil: TxOptions. See the PostgreSQL dialect for
	// why READ COMMITTED is enough there.
	ReconcileTxOptions *sql.TxOptions
	// WritableCTE: the backend runs INSERTs inside WITH (PostgreSQL's
	// data-modifying statements in WITH; SQLite has none). Enqueue to one
	// channel is then one autocommitted statement (the command, its queue
	// row and the audit entry) instead of BEGIN, three INSERTs and COMMIT:
	// four network round trips fewer per API enqueue (enqueueOneSQL).
	// Needs SeqClock.
	WritableCTE bool
	// ReconcileBatch is how many enrollments a profile reconciler pass
	// claims, plans and writes in one transaction on this backend (0:
	// profiles.DefaultBatch). SQLite's single writer pays per transaction
	// — its COMMIT, the claim before it, and every reader connection's
	// page cache dropped at its next read after each commit — so fewer,
	// larger batches keep that serial writer shorter.
	ReconcileBatch int
	// MarkChunk: a change that may concern many devices (a profile
	// assigned to a group, a group unassigned, a profile's new version)
	// marks at most this many in its own transaction, in enrollment id
	// order, and records the rest as a pending expansion
	// (reconcile_expansions) that reconciler claims on any instance mark
	// chunk by chunk before they claim (expandMarks). 0: every device in
	// the change's transaction (one INSERT … SELECT). On PostgreSQL that
	// one statement ran alone for 2.7–3.7 s at 100,000 devices before any
	// pass could claim ("Session 12 — pgassign4", docs/benchmarks.md).
	MarkChunk int
	// ChunkRangeByIndex: statements that make the planner read a chunk's
	// range of enrollment ids in primary-key order (markChunk) and put
	// its settings back, run before and after that read. PostgreSQL,
	// without statistics of a freshly enrolled or seeded fleet, estimated
	// id > ? at a third of a few thousand rows and planned the range read
	// (ORDER BY id LIMIT 1,000) as a sequential scan and sort of every
	// enrollment, per chunk: quadratic in the fleet. Empty: nothing
	// (SQLite walks its primary key).
	ChunkRangeByIndex [2]string
	// ClaimReadsInputs: ClaimReconcile reads the claimed enrollments'
	// inputs (ReconcileInputs) inside the claim's transaction, on the
	// writer connection. SQLite used it in session 10 and no longer does
	// (store/sqlite says why: the reads made the serial writer longer;
	// "Session 11 — sqlassign3", docs/benchmarks.md); kept as a choice a
	// single-writer backend can make, with its test. A reader connection's page cache is
	// dropped whole at its next read after any other connection commits
	// (WAL mode), and the writer commits a reconciler batch, its claims
	// and the push results' hints many times per second while a large
	// assignment drains: the readers refilled it with a pread per page,
	// 31 µs per enrollment read. The writer's cache (64 MiB) survives its
	// own commits and holds the pages the marking, the claims and the
	// batch writes touched. The claim and its reads are one snapshot too.
	// Not with SkipLocked (its claim is one autocommitted statement).
	ClaimReadsInputs bool
	// FinishByValues ends a reconciler batch's claims (ApplyReconcile)
	// with one UPDATE … FROM a VALUES list of the claims per chunk (and a
	// DELETE of those that end), finding each queue row once; false: an
	// UPDATE or DELETE per due time with an OR of (id, gen) pairs, then a
	// release of the rest by id (each row looked up twice).
	FinishByValues bool
	// OneProcess: one process at a time uses the database through one
	// Store (SQLite: the lock file a serving process takes, sqlite.Lock),
	// so the Store may remember what only its own writes change — the
	// webhook list QueueEvent looks at for every event (webhookCache).
	// false where instances share the database (PostgreSQL): a webhook
	// added on one must take the next event on every other, so the list
	// is remembered there only while the backend's change listener is
	// connected (SetWebhooksWatched).
	OneProcess bool
	// Pipeline runs fn on a transaction at isolation iso on one
	// connection of db that sends its BEGIN with its first statement
	// and its last statement with its COMMIT (PipeTx), and rolls back
	// what fn leaves open: a device result's transaction
	// (RecordResultNext) is two network round trips shorter than on a
	// database/sql transaction, whose BeginTx sends BEGIN and waits, and
	// whose Commit is a statement of its own (PostgreSQL's pgx pipeline,
	// store/postgres). nil: database/sql transactions only.
	Pipeline func(ctx context.Context, db *sql.DB, iso sql.IsolationLevel, fn func(PipeTx) error) error
	// AuthGeneration: the database counts, in auth_generation, every
	// write that can change a command-channel request's sender read
	// (migration 0032's triggers, SQLite), so the store remembers those
	// reads and checks the count with each request (authCache). false:
	// remembered only while the backend's change listener is connected
	// (SetAuthWatched, PostgreSQL).
	AuthGeneration bool
}

// Store implements store.Store over database/sql.
type Store struct {
	d    Dialect
	w    *db // writes (and read-modify-write transactions)
	r    *db // reads
	name string
	// gc is the group committer when the dialect asks for one.
	gc *groupCommitter
	// seqs gives queue rows their seq when the dialect has no SeqClock.
	seqs seqCounter
	// Closers run on Close (connection pools).
	closers []func() error
	// retries counts transactions run again after a serialization
	// failure or deadlock (TxRetries).
	retries atomic.Int64
	// enqueueOneQ holds enqueueOneSQL without and with the audit entry,
	// built once (Dialect.WritableCTE).
	enqueueOneQ [2]string
	// verifyEnqueueQ is verifyEnqueueSQL, built once (Dialect.WritableCTE).
	verifyEnqueueQ string
	// hooks remembers the webhook list (Dialect.OneProcess, or while a
	// shared database's change listener is connected).
	hooks webhookCache
	// auth remembers command-channel senders (authCache); idleQ is
	// deviceRequestIdleSQL with the dialect's count column.
	auth  authCache
	idleQ string
	// markChunk is Dialect.MarkChunk unless SetMarkChunk changed it.
	markChunk atomic.Int64
}

var _ store.Store = (*Store)(nil)

// New wraps connection pools. w serves writes and transactions, r reads
// (they may be the same pool).
func New(d Dialect, w, r *sql.DB, description string) *Store {
	s := &Store{d: d, w: newDB(w, d), r: newDB(r, d), name: description}
	s.markChunk.Store(int64(d.MarkChunk))
	s.idleQ = deviceRequestIdleSQL + deviceRequestIdleNoGen + deviceRequestFrom
	if d.AuthGeneration {
		s.idleQ = deviceRequestIdleSQL + deviceRequestIdleGen + deviceRequestFrom
	}
	if d.WritableCTE {
		s.enqueueOneQ = [2]string{s.enqueueOneSQL(false), s.enqueueOneSQL(true)}
		s.verifyEnqueueQ = s.verifyEnqueueSQL()
	}
	if d.GroupCommit {
		s.gc = newGroupCommitter(s)
		// Single statements on the writer join the batches too.
		s.w.gc = s.gc
		s.closers = append(s.closers, func() error { s.gc.close(); return nil })
	}
	if r != w {
		s.closers = append(s.closers, s.r.close)
	}
	s.closers = append(s.closers, s.w.close)
	return s
}

// TxRetries counts the transactions this store ran again because the
// database reported a serialization failure or a deadlock (PostgreSQL;
// always 0 with group commit), since it was opened: each is the
// transaction's statements and one back-off sleep paid again.
func (s *Store) TxRetries() int64 { return s.retries.Load() }

// Backend names the implementation.
func (s *Store) Backend() string { return s.d.Name }

// ReconcileBatch is the dialect's reconciler batch (Dialect.ReconcileBatch;
// 0: the reconciler's default).
func (s *Store) ReconcileBatch() int { return s.d.ReconcileBatch }

// SetMarkChunk sets how many devices a change marks in one transaction
// (Dialect.MarkChunk; n <= 0: all of them in the change's own). Tests
// use it to run chunked marking on any backend with a few devices.
func (s *Store) SetMarkChunk(n int) { s.markChunk.Store(int64(max(n, 0))) }

// Description says which database this is, for start-up output.
func (s *Store) Description() string { return s.name }

// PoolStats reports database/sql's statistics of the read and the write
// connection pools (connections open and idle, waits, connections closed
// for exceeding the idle limit): for diagnostics and the tests that keep
// the pools from reopening connections.
func (s *Store) PoolStats() (read, write sql.DBStats) {
	return s.r.DB.Stats(), s.w.DB.Stats()
}

// OnClose has Close run fn first (before the pools close): a backend's
// own background work on the store, such as PostgreSQL's webhook change
// listener. Call it before the store is in use.
func (s *Store) OnClose(fn func() error) {
	s.closers = append([]func() error{fn}, s.closers...)
}

func (s *Store) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("%s: %w", s.d.Name, err)
	}
	return nil
}

// rebind turns ? placeholders into $1, $2, … for PostgreSQL. Pomona's SQL
// has no ? inside string literals.
func (d Dialect) rebind(q string) string {
	if !d.Numbered || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// db and Tx rebind every query for the dialect; db also keeps prepared
// statements when the dialect asks for it.
type db struct {
	*sql.DB
	d Dialect

	mu    sync.RWMutex
	stmts map[string]*sql.Stmt // by query as written

	// gc, on the writer pool with group commit, runs ExecContext as a
	// transaction of the next batch.
	gc *groupCommitter
}

// maxStatements bounds the statement cache: queries built with a
// variable number of placeholders stop being cached once it is full.
const maxStatements = 256

func newDB(d *sql.DB, dialect Dialect) *db {
	return &db{DB: d, d: dialect, stmts: map[string]*sql.Stmt{}}
}

// cached returns the prepared statement of q if there is one.
func (x *db) cached(q string) *sql.Stmt {
	if !x.d.CacheStatements {
		return nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.stmts[q]
}

// stmt returns the cached prepared statement of q, preparing it on first
// use; nil when caching is off, the cache is full or preparing failed
// (the caller then runs the query directly and reports its error).
// Never call it inside a transaction of the same pool: preparing needs a
// free connection (SQLite's writer pool has one).
func (x *db) stmt(ctx context.Context, q string) *sql.Stmt {
	if !x.d.CacheStatements || strings.Contains(q, ";") {
		return nil // scripts (migrations) run as they are
	}
	x.mu.RLock()
	st, ok := x.stmts[q]
	n := len(x.stmts)
	x.mu.RUnlock()
	if ok || n >= maxStatements {
		return st
	}
	st, err := x.DB.PrepareContext(context.WithoutCancel(ctx), x.d.rebind(q))
	if err != nil {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.stmts[q]; ok {
		st.Close()
		return old
	}
	x.stmts[q] = st
	return st
}

func (x *db) close() error {
	x.mu.Lock()
	for q, st := range x.stmts {
		st.Close()
		delete(x.stmts, q)
	}
	x.mu.Unlock()
	return x.DB.Close()
}

func (x *db) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if x.gc != nil {
		return x.gc.exec(ctx, q, args...)
	}
	if st := x.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return x.DB.ExecContext(ctx, x.d.rebind(q), args...)
}

func (x *db) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := x.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return x.DB.QueryContext(ctx, x.d.rebind(q), args...)
}

func (x *db) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := x.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return x.DB.QueryRowContext(ctx, x.d.rebind(q), args...)
}

// Tx is a transaction that rebinds its queries and uses the statements
// its pool has prepared already (it cannot prepare on the pool: the
// transaction holds the connection).
type Tx struct {
	*sql.Tx
	d  Dialect
	db *db
	// want lists queries to prepare on the pool once the transaction has
	// given its connection back.
	want []string
	// analyze lists tables to ANALYZE once the transaction has committed
	// (Dialect.AnalyzeAfter: a statement of it wrote many rows).
	analyze []string
	// deferWrites lets writeInventory hold its UPDATE back (deferred)
	// instead of sending it: set by RecordResultNext on a WritableCTE
	// dialect, whose next-command take then carries it (withDeferred).
	deferWrites bool
	// deferred is a held-back UPDATE whose outcome nothing in the
	// transaction reads (an answer's inventory): sent as a data-modifying
	// WITH of the transaction's next statement that takes it
	// (withDeferred), else on its own before the commit (flushDeferred).
	deferred *deferredWrite
	// aheadItem, aheadItems: RecordResultNext's profile work sent with
	// the result's statement on a piped transaction (sendProfileAhead),
	// taken by acknowledgeItemCTE and verifyItems instead of a round
	// trip of their own.
	aheadItem, aheadItems Rows
	// detached: the group committer runs this transaction (see
	// detach), so its statements do not end with the caller's context;
	// bg is from without its cancellation. Only the committer's
	// goroutine uses the Tx.
	detached bool
	from, bg context.Context
	// pipe, when set, runs the statements instead of the embedded
	// *sql.Tx, which is then nil (Store.pipedTx): ExecContext, row and
	// rows go through it; QueryRowContext and QueryContext must not be
	// reached (errNotPiped).
	pipe PipeTx
	// bound are the pool's statements this transaction has bound to
	// itself already (sql.Tx.StmtContext), by query as written: a
	// detached transaction — the group committer's, which runs a batch's
	// transactions, often the same statements, on one Tx — binds each
	// query once instead of on every use (see bind).
	bound  [maxBound]boundStmt
	nbound int
}

// maxBound bounds Tx.bound: a device result's transaction runs about a
// dozen distinct statements, a batch of them the same dozen.
const maxBound = 24

// boundStmt is one of Tx.bound.
type boundStmt struct {
	q  string
	st *sql.Stmt
}

// deferredWrite is one held-back statement (Tx.deferred): an UPDATE with
// ? placeholders and its arguments.
type deferredWrite struct {
	q    string
	args []any
}

// withDeferred is the data-modifying statement q (`WITH a AS (…) …`, a
// WritableCTE dialect's) with the held-back write, if any, as its first
// WITH element, and args after the write's: one round trip for both. The
// write is then no longer held. PostgreSQL runs a data-modifying WITH
// element exactly once and to completion whatever the statement answers
// (also no row), on the statement's snapshot; the write and q must touch
// different rows (the inventory's enrollment row, q's queue rows).
func (x *Tx) withDeferred(q string, args []any) (string, []any) {
	w := x.deferred
	if w == nil || !strings.HasPrefix(q, "WITH ") {
		return q, args
	}
	x.deferred = nil
	return "WITH deferred AS (" + w.q + "), " + strings.TrimPrefix(q, "WITH "), append(append([]any(nil), w.args...), args...)
}

// flushDeferred sends the held-back write, if any, on its own (before the
// commit: nothing took it).
func (x *Tx) flushDeferred(ctx context.Context) error {
	w := x.deferred
	if w == nil {
		return nil
	}
	x.deferred = nil
	_, err := x.ExecContext(ctx, w.q, w.args...)
	return err
}

// hot is ctx for one of the hot paths' short reads on the read pool
// (Dialect.DetachHotReads says which and why): without its cancellation
// when the dialect asks for it, otherwise (and for a context that cannot
// end) ctx itself.
// (ctx.Done is not asked: on a context whose Done nobody asked for yet it
// would allocate the channel.)
func (s *Store) hot(ctx context.Context) context.Context {
	if s.d.DetachHotReads {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// detach is ctx for a statement of x: unchanged, or without its
// cancellation when the group committer runs x. The committer answers a
// caller only once the batch has committed or failed, whatever happens to
// the caller's context meanwhile (do), and a statement interrupted because
// one caller went away fails the whole shared batch, which then runs
// again transaction by transaction: the committer's transactions are a
// few short statements that run to their end instead. It is also cheaper:
// for a context that can end, database/sql starts a goroutine per query
// (Rows.awaitDone) and per transaction (Tx.awaitDone), and the SQLite
// driver one per statement (interruptOnDone) — four or five goroutines
// and a dozen allocations per statement of a device's result.
// The detached context is made once per transaction for the context its
// statements are usually given (the caller's).
func (x *Tx) detach(ctx context.Context) context.Context {
	if !x.detached {
		return ctx
	}
	if ctx != x.from {
		x.from, x.bg = ctx, context.WithoutCancel(ctx)
	}
	return x.bg
}

// cached is the pool's statement for q, or nil (then q is noted for
// preparing after the transaction).
func (x *Tx) cached(q string) *sql.Stmt {
	st := x.db.cached(q)
	if st == nil && x.d.CacheStatements && !strings.Contains(q, ";") {
		x.want = append(x.want, q)
	}
	return st
}

// bind is the pool's statement for q bound to this transaction, or nil
// (q is then run directly, and noted for preparing: cached).
//
// database/sql's Tx.StmtContext makes a new *sql.Stmt on every call (the
// statement, its driver statement wrapper, the pool's dependency entry,
// the transaction's statement list; ~8 allocations and three locks, ~40
// of a device result's ~470 allocations, docs/benchmarks.md "Session 13 —
// wave5"), although a bound statement may run any number of times until
// the transaction ends. A detached transaction keeps what it bound and
// runs it again for the same query: within one transaction the same
// driver statement is used either way (StmtContext finds the one the
// pool prepared on the connection). Only detached transactions keep
// them: their statements' context cannot end, so what StmtContext
// returns is never a statement that failed for a context's sake, and only
// the committer's goroutine uses them. Compared by query as written:
// Pomona's queries are constants, equal strings share their bytes, and
// the comparison ends at the first differing length or byte.
func (x *Tx) bind(ctx context.Context, q string) *sql.Stmt {
	if x.detached {
		for i := range x.nbound {
			if x.bound[i].q == q {
				return x.bound[i].st
			}
		}
	}
	st := x.cached(q)
	if st == nil {
		return nil
	}
	b := x.Tx.StmtContext(ctx, st)
	if x.detached && x.nbound < len(x.bound) {
		x.bound[x.nbound] = boundStmt{q: q, st: b}
		x.nbound++
	}
	return b
}

func (x *Tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if x.pipe != nil {
		n, err := x.pipe.Exec(ctx, x.d.rebind(q), args...)
		if err != nil {
			return nil, err
		}
		return pipeResult(n), nil
	}
	ctx = x.detach(ctx)
	if st := x.bind(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return x.Tx.ExecContext(ctx, x.d.rebind(q), args...)
}

func (x *Tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	x.notPiped()
	ctx = x.detach(ctx)
	if st := x.bind(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return x.Tx.QueryContext(ctx, x.d.rebind(q), args...)
}

func (x *Tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	x.notPiped()
	ctx = x.detach(ctx)
	if st := x.bind(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return x.Tx.QueryRowContext(ctx, x.d.rebind(q), args...)
}

// notPiped stops a programming error: a database/sql read on a piped
// transaction (Tx.pipe) has no *sql.Tx to run on. Work that may run
// piped reads through Tx.row and Tx.rows; work that does not returns
// errNotPiped before its first statement.
func (x *Tx) notPiped() {
	if x.pipe != nil {
		panic("sqlstore: QueryRowContext or QueryContext on a piped transaction (use Tx.row, Tx.rows or errNotPiped)")
	}
}

func (x *Tx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return x.Tx.PrepareContext(ctx, x.d.rebind(q))
}

// maxTxAttempts bounds retries of a conflicting PostgreSQL transaction.
const maxTxAttempts = 20

// tx runs fn in a transaction, retrying it when the backend reports a
// serialization conflict. fn must be safe to run again. With group
// commit, fn runs in the next batch (groupcommit.go).
func (s *Store) tx(ctx context.Context, fn func(*Tx) error) error {
	return s.txWith(ctx, s.d.TxOptions, fn)
}

// resultTx is tx at the dialect's ResultTxOptions (a device result's
// transaction, RecordResultNext).
func (s *Store) resultTx(ctx context.Context, fn func(*Tx) error) error {
	if s.d.ResultTxOptions == nil {
		return s.tx(ctx, fn)
	}
	return s.txWith(ctx, s.d.ResultTxOptions, fn)
}

// txWith is tx at isolation opts.
func (s *Store) txWith(ctx context.Context, opts *sql.TxOptions, fn func(*Tx) error) error {
	if s.gc != nil {
		return s.gc.do(ctx, fn)
	}
	var err error
	for attempt := 0; attempt < maxTxAttempts; attempt++ {
		if attempt > 0 {
			s.retries.Add(1)
			// Back off a little, more with each attempt, with jitter.
			time.Sleep(time.Duration(attempt*attempt)*time.Millisecond + time.Duration(time.Now().UnixNano()%1000)*time.Microsecond)
		}
		err = s.once(ctx, opts, fn)
		if err == nil || s.d.Retryable == nil || !s.d.Retryable(err) {
			return err
		}
	}
	return fmt.Errorf("%s: transaction kept conflicting: %w", s.d.Name, err)
}

// txAlone is tx for a large transaction (thousands of rows): with group
// commit it commits in a transaction of its own (groupCommitter.doAlone),
// otherwise as tx.
func (s *Store) txAlone(ctx context.Context, fn func(*Tx) error) error {
	if s.gc != nil {
		return s.gc.doAlone(ctx, fn)
	}
	return s.tx(ctx, fn)
}

func (s *Store) once(ctx context.Context, opts *sql.TxOptions, fn func(*Tx) error) error {
	return s.onceDetached(ctx, opts, fn, false)
}

// onceDetached is once; with detached (the group committer's
// transactions: Tx.detach) neither the transaction nor its statements end
// with ctx. ctx still carries its values.
func (s *Store) onceDetached(ctx context.Context, opts *sql.TxOptions, fn func(*Tx) error, detached bool) error {
	var from, bg context.Context
	bctx := ctx
	if detached {
		from, bg = ctx, context.WithoutCancel(ctx)
		bctx = bg
	}
	t, err := s.w.DB.BeginTx(bctx, opts)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", s.d.Name, err)
	}
	tx := &Tx{Tx: t, d: s.d, db: s.w, detached: detached, from: from, bg: bg}
	defer func() {
		for _, q := range tx.want {
			s.w.stmt(ctx, q)
		}
	}()
	if err := fn(tx); err != nil {
		t.Rollback()
		return err
	}
	if err := tx.flushDeferred(ctx); err != nil {
		t.Rollback()
		return err
	}
	if err := t.Commit(); err != nil {
		return err
	}
	for _, table := range tx.analyze {
		// Statistics are a planning aid: the write is committed and
		// stands whether or not they could be gathered.
		if _, err := s.w.DB.ExecContext(ctx, `ANALYZE `+table); err != nil && ctx.Err() == nil {
			slog.Warn("store: ANALYZE after a bulk write failed", "table", table, "err", err)
		}
	}
	return nil
}

// Migrate applies every migration in dir of fsys (files NNNN_name.sql)
// newer than the recorded version, each in its own transaction.
func (s *Store) Migrate(ctx context.Context, fsys fs.FS, dir string) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("%s: migrations table: %w", s.d.Name, err)
	}
	files, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	// A binary older than the database must not run on it: it would not
	// know the newer columns and tables (migrations only go forward).
	known := 0
	for _, f := range files {
		num, _, _ := strings.Cut(path.Base(f), "_")
		if v, err := strconv.Atoi(num); err == nil && v > known {
			known = v
		}
	}
	var applied sql.NullInt64
	if err := s.r.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&applied); err != nil {
		return fmt.Errorf("%s: read schema version: %w", s.d.Name, err)
	}
	if int(applied.Int64) > known {
		return &SchemaTooNewError{Backend: s.d.Name, Database: int(applied.Int64), Binary: known}
	}
	for _, f := range files {
		base := path.Base(f)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("%s: migration file %s is not named NNNN_name.sql", s.d.Name, base)
		}
		body, err := fs.ReadFile(fsys, f)
		if err != nil {
			return err
		}
		apply := func(tx *Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil // applied (perhaps by another instance just now)
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", v, base, toMicros(time.Now()))
			return err
		}
		if s.d.Name == "sqlite" && markedForeignKeysOff(string(body)) {
			err = s.migrateForeignKeysOff(ctx, string(body), apply)
		} else {
			err = s.tx(ctx, apply)
		}
		if err != nil {
			return fmt.Errorf("%s: apply migration %s: %w", s.d.Name, base, s.d.Constraint(err))
		}
	}
	return nil
}

// SchemaTooNewError: the database was migrated by a newer Pomona than this
// binary (its schema_migrations has a version this binary has no file for).
// Open refuses such a store; errors.As finds it.
type SchemaTooNewError struct {
	Backend          string // "sqlite" or "postgres"
	Database, Binary int    // newest applied migration; newest this binary knows
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("%s: the database schema is version %d, newer than this Pomona binary knows (up to %d): "+
		"a newer Pomona has upgraded it, and migrations only go forward. Run that newer binary (or newer), "+
		"or restore the backup taken before the upgrade (docs/deployment.md, Upgrades)", e.Backend, e.Database, e.Binary)
}

// SchemaVersion reports the newest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.r.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&v)
	return int(v.Int64), err
}

func toMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// constraint maps constraint failures to the store's errors, for the races
// the explicit pre-checks cannot see.
func (s *Store) constraint(err error) error {
	if err == nil || s.d.Constraint == nil {
		return err
	}
	return s.d.Constraint(err)
}

// collect runs a query and scans every row with scan.
func collect[T any](ctx context.Context, q queryer, scan func(scanner) (*T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanRows(sqlRows{rows}, scan)
}

// scanRows scans every row of rows with scan, and closes rows.
func scanRows[T any](rows Rows, scan func(scanner) (*T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}
