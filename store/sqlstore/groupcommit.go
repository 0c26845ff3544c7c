package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit (SQLite). SQLite has one writer and, with
// synchronous=FULL, every COMMIT appends the changed pages to the WAL and
// fsyncs it: a durable write costs one fsync and the write-out of every
// page it touched, however small the change. When several requests write
// at once, one goroutine (the committer) runs their transactions one
// after the other inside a single database transaction, each in its own
// SAVEPOINT, and commits once: the batch shares one fsync, and pages that
// several of them touch (the queue's index, a channel row) go to the WAL
// once. Nobody is answered before that COMMIT has returned, so every
// acknowledged write is as durable as before (synchronous stays FULL).
//
// Isolation is unchanged: the transactions of a batch run serially on
// the one connection, so each sees the ones before it exactly as if they
// had committed first (SQLite's serial order is the batch order). A
// transaction whose function fails is rolled back to its savepoint (or,
// for the two that run without one, the batch without it is committed
// again: see shared) and only its caller gets the error. When the batch itself fails — the
// COMMIT, or an error that made SQLite roll back the whole transaction
// (an I/O error, a full disk, a statement interrupted by a cancelled
// context) — no caller has been answered yet, and each transaction of
// the batch runs again alone, as it would have without group commit
// (transaction functions are written to be safe to run again: see tx).
// A transaction alone in its batch runs as a plain transaction.

// maxBatch bounds the transactions sharing one commit, so that one
// commit's latency stays short under a flood of writers.
const maxBatch = 64

// hintWait bounds how long a batch made only of lazy hints (doHintLater)
// waits for a durable write to ride with: a command's sent mark is
// followed, when the device answers at once, by its result's durable
// transaction a few milliseconds later, which then commits both with one
// COMMIT. Until then the mark is unseen by the read pool (see settle).
const hintWait = 5 * time.Millisecond

// commitDelay bounds how long a batch with a durable write waits for the
// writes of other device requests in progress to join it, and
// commitSiblings is how many such requests (besides the batch's own
// callers) must be in progress for it to wait at all: PostgreSQL's
// commit_delay and commit_siblings. A lone writer is never delayed. In a
// wave (32 signed requests in flight, arriving about 1 ms apart from one
// load-generator core) nearly every result committed alone — BEGIN, the
// PRAGMA-free statements, COMMIT with its WAL write and fsync per result
// — because each arrived after the previous batch had committed; waiting
// up to commitDelay lets the next few results share one COMMIT. The
// acknowledged write is still fsynced before its caller is answered: the
// wait comes before the COMMIT, never after it.
const (
	commitDelay    = 500 * time.Microsecond
	commitSiblings = 2
)

// gcRequest is one transaction waiting for the committer.
type gcRequest struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error // buffered (1): the committer never blocks on it
	// hint: the write may be lost in a crash (see doHint).
	hint bool
	// alone: a large transaction committed in a transaction of its own
	// (see doAlone).
	alone bool
	// lazy: a hint nobody waits for (see doHintLater); also hint.
	lazy bool
}

type groupCommitter struct {
	s    *Store
	reqs chan *gcRequest
	stop chan struct{}
	// exited is closed when loop has returned: a request it never took
	// from reqs is never answered (submit).
	exited chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	// sync is the connection's synchronous setting as last set by the
	// committer ("" unknown: the DSN's FULL, or a PRAGMA that failed).
	// Only the committer's goroutine touches it.
	sync string
	// lazy counts the lazy hints submitted and not yet run (settle).
	lazy atomic.Int64
	// hold is how long a batch of lazy hints waits (hintWait; tests
	// change it before the first request).
	hold time.Duration
	// delay is commitDelay (tests change it before the first request;
	// 0: never wait).
	delay time.Duration
	// open counts the device requests in progress (Store.Arrive): the
	// writers that may still join a batch (commitSiblings).
	open atomic.Int64
	// left wakes a batch waiting in gather when a request leaves
	// (buffered (1): leaving never blocks): one that leaves without
	// writing (an Idle poll with nothing queued) must not keep it waiting.
	left chan struct{}
	// batches and txs count the batches run and the requests in them
	// (lone, alone and cancelled ones included):
	// txs/batches is the mean batch size (GroupCommitCounts).
	batches, txs atomic.Int64
}

var errStoreClosed = errors.New("the store is closed")

func newGroupCommitter(s *Store) *groupCommitter {
	g := &groupCommitter{s: s, reqs: make(chan *gcRequest, 4*maxBatch), stop: make(chan struct{}), exited: make(chan struct{}), hold: hintWait, delay: commitDelay, left: make(chan struct{}, 1)}
	g.wg.Add(1)
	go g.loop()
	return g
}

// do runs fn in a transaction of the next batch and returns its error
// once the batch has committed (or fn's own error). It waits for the
// batch even when ctx ends meanwhile: the answer must say whether the
// write is durable. A request whose ctx has ended before its turn is not
// run.
func (g *groupCommitter) do(ctx context.Context, fn func(*Tx) error) error {
	r := &gcRequest{ctx: ctx, fn: recovered(fn), done: make(chan error, 1)}
	return g.submit(ctx, r)
}

// submit hands r to the committer and waits for its answer (see do).
// After close it answers errStoreClosed: a send to reqs can still win
// the select once stop is closed (reqs has room), and after the
// committer has drained reqs and returned nobody would answer it.
func (g *groupCommitter) submit(ctx context.Context, r *gcRequest) error {
	select {
	case <-g.stop:
		return fmt.Errorf("%s: %w", g.s.d.Name, errStoreClosed)
	default:
	}
	select {
	case g.reqs <- r:
	case <-g.stop:
		return fmt.Errorf("%s: %w", g.s.d.Name, errStoreClosed)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-g.exited:
		// The committer answers every request it took before it
		// returns: one it did not take was never run.
		select {
		case err := <-r.done:
			return err
		default:
			return fmt.Errorf("%s: %w", g.s.d.Name, errStoreClosed)
		}
	}
}

// doAlone is do for a large transaction (a reconciler batch, a bulk
// command: thousands of rows): it waits its turn with the others but
// commits in a transaction of its own, never behind a SAVEPOINT. Shared,
// its savepoint's statement journal holds a copy of every page it first
// changes, and releasing that journal (temp_store=MEMORY: modernc's
// allocator returning the memory with madvise) was 17.5 % of the
// server's CPU while one profile was queued for 100,000 devices
// (docs/benchmarks.md, "Session 7 summary"); sharing a commit saves such
// a transaction one fsync among thousands of row writes.
func (g *groupCommitter) doAlone(ctx context.Context, fn func(*Tx) error) error {
	r := &gcRequest{ctx: ctx, fn: recovered(fn), done: make(chan error, 1), alone: true}
	return g.submit(ctx, r)
}

// doHint is do for a write that is only a hint: a crash may lose it
// and nothing breaks (a command's "sent" mark — the command is then sent
// again, which the queue does anyway for a sent command never answered).
// A batch made only of hints commits with synchronous=NORMAL: the WAL
// frames are written (the write is visible to every reader when doHint
// returns) but not fsynced; they become durable with the next batch that
// commits with FULL (its fsync of the WAL covers every frame before it)
// or at a checkpoint (which syncs the WAL first). A hint that shares a
// batch with any other write is committed with FULL like the rest. So a
// durable write is never weakened: every other batch still commits with
// synchronous=FULL, set again before its COMMIT if a hint batch lowered it.
func (g *groupCommitter) doHint(ctx context.Context, fn func(*Tx) error) error {
	r := &gcRequest{ctx: ctx, fn: recovered(fn), done: make(chan error, 1), hint: true}
	return g.submit(ctx, r)
}

// doHintLater is doHint without the wait: fn is handed to the committer
// and doHintLater returns at once, before fn has run, so the caller never
// learns fn's error (a hint's failure leaves what it would have marked
// unmarked, which a hint may). fn runs on the committer's goroutine with
// a context that is never cancelled (the caller's request may be over by
// then; use the *Tx, not the caller's context), in FIFO order with every
// other request: a transaction submitted after doHintLater returned sees
// fn's write. A batch made only of lazy hints is held up to hintWait for
// a durable write to join it (its FULL commit then covers the hint, and
// the hint-only commit with its two PRAGMA switches is saved); otherwise
// it commits with NORMAL as doHint's. Readers on the read pool see the
// write once its batch has committed; settle waits for that.
func (g *groupCommitter) doHintLater(fn func(*Tx) error) error {
	r := &gcRequest{ctx: context.Background(), fn: recovered(fn), done: make(chan error, 1), hint: true, lazy: true}
	select {
	case <-g.stop: // not queued behind a committer that is gone (submit)
		return fmt.Errorf("%s: %w", g.s.d.Name, errStoreClosed)
	default:
	}
	g.lazy.Add(1)
	select {
	case g.reqs <- r:
		return nil
	case <-g.stop:
		g.lazy.Add(-1)
		return fmt.Errorf("%s: %w", g.s.d.Name, errStoreClosed)
	}
}

// settle returns once every lazy hint submitted before it has committed
// (or failed): a read on the read pool after settle sees them, as it saw a
// doHint's write when doHint returned. With none pending (the usual case)
// it is one atomic load; otherwise it submits an empty hint, which ends a
// held batch at once and commits behind the lazy ones (FIFO).
func (g *groupCommitter) settle(ctx context.Context) error {
	if g == nil || g.lazy.Load() == 0 {
		return nil
	}
	return g.doHint(ctx, func(*Tx) error { return nil })
}

// lazyOnly says whether every request of batch is a lazy hint.
func lazyOnly(batch []*gcRequest) bool {
	for _, r := range batch {
		if !r.lazy {
			return false
		}
	}
	return true
}

// setSync sets the writer connection's synchronous level for the next
// COMMIT: NORMAL when every transaction of the batch is a hint, FULL
// otherwise. The PRAGMA runs outside a transaction on the writer pool's
// single connection, which only the committer writes on. A failure to
// lower the level is harmless (the batch commits with FULL); a failure to
// raise it fails the batch, which must not commit without its fsync. A
// connection the pool opens anew gets FULL from its DSN, so a stale
// g.sync can only make the committer set FULL once more than needed.
func (g *groupCommitter) setSync(hintsOnly bool) error {
	want := "FULL"
	if hintsOnly {
		want = "NORMAL"
	}
	if g.sync == want {
		return nil
	}
	if _, err := g.s.w.DB.ExecContext(context.Background(), "PRAGMA synchronous = "+want); err != nil {
		g.sync = ""
		if hintsOnly {
			return nil
		}
		return fmt.Errorf("%s: set synchronous=FULL: %w", g.s.d.Name, err)
	}
	g.sync = want
	return nil
}

// recovered turns a panic of fn into its error: fn runs on the
// committer's goroutine, where a panic would end the process instead of
// the one request.
func recovered(fn func(*Tx) error) func(*Tx) error {
	return func(tx *Tx) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("sqlstore: transaction panicked: %v\n%s", p, debug.Stack())
			}
		}()
		return fn(tx)
	}
}

func (g *groupCommitter) close() {
	g.once.Do(func() { close(g.stop) })
	g.wg.Wait()
}

func (g *groupCommitter) loop() {
	defer g.wg.Done()
	defer close(g.exited)
	batch := make([]*gcRequest, 0, maxBatch)
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	for {
		select {
		case r := <-g.reqs:
			batch = append(batch[:0], r)
		case <-g.stop:
			// Whatever is still queued was never run; lazy hints (nobody
			// waits for them) are committed, the others refused.
			batch = batch[:0]
			for {
				select {
				case r := <-g.reqs:
					if r.lazy && len(batch) < maxBatch {
						batch = append(batch, r)
						continue
					}
					r.done <- fmt.Errorf("%s: %w", g.s.d.Name, errStoreClosed)
					if r.lazy {
						g.lazy.Add(-1)
					}
				default:
					g.runCounted(batch)
					return
				}
			}
		}
		// Everyone who arrived while the last batch was committing
		// shares this one; a batch of lazy hints alone waits a little for
		// a durable write (doHintLater).
		held := false
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
				continue
			default:
			}
			if !lazyOnly(batch) {
				break
			}
			if !held {
				held = true
				wait.Reset(g.hold)
			}
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			case <-wait.C:
				held = false
				break more
			case <-g.stop:
				break more
			}
		}
		if held {
			wait.Stop()
		}
		batch = g.gather(batch, wait)
		g.runCounted(batch)
		clear(batch)
	}
}

// gather waits up to g.delay for more requests to join batch while at
// least commitSiblings device requests other than the batch's own
// callers are in progress (commitDelay), and returns the batch. It
// stops waiting as soon as every request in progress has joined (nobody
// else can come), the batch is full, or the store closes. A batch of lazy
// hints alone never waits here (it waited in loop), nor a lone writer.
// wait is loop's timer, stopped.
func (g *groupCommitter) gather(batch []*gcRequest, wait *time.Timer) []*gcRequest {
	if g.delay <= 0 || len(batch) >= maxBatch || lazyOnly(batch) || g.siblings(batch) < commitSiblings {
		return batch
	}
	select {
	case <-g.left: // an old wake-up: siblings is read below
	default:
	}
	wait.Reset(g.delay)
	defer wait.Stop()
	for len(batch) < maxBatch && g.siblings(batch) > 0 {
		select {
		case r := <-g.reqs:
			batch = append(batch, r)
		case <-g.left:
		case <-wait.C:
			return batch
		case <-g.stop:
			return batch
		}
	}
	return batch
}

// siblings is the number of device requests in progress whose writes are
// not in batch: the open requests less the batch's waiting callers (a
// lazy hint's caller may already have been answered, so it is not
// subtracted; a caller that is no device request — the API, a job — is,
// which can only make the estimate lower: fewer waits).
func (g *groupCommitter) siblings(batch []*gcRequest) int64 {
	n := g.open.Load()
	for _, r := range batch {
		if !r.lazy {
			n--
		}
	}
	return n
}

// runCounted is run, which counts the batch's lazy hints as done
// (settle) once they have run and before it answers anyone.
func (g *groupCommitter) runCounted(batch []*gcRequest) {
	if len(batch) == 0 {
		return
	}
	g.batches.Add(1)
	g.txs.Add(int64(len(batch)))
	g.run(batch)
}

// run commits one batch and answers every request in it. The batch's
// lazy hints are counted as done (g.lazy) after the commit and before
// the first answer: a caller whose transaction committed with them must
// not see them pending (settle would wait for nothing; the race detector
// showed the window in TestLazyHintRidesWithTheNextDurableBatch).
func (g *groupCommitter) run(batch []*gcRequest) {
	counted := false
	lazyDone := func() {
		if counted {
			return
		}
		counted = true
		var n int64
		for _, r := range batch {
			if r.lazy {
				n++
			}
		}
		if n > 0 {
			g.lazy.Add(-n)
		}
	}
	defer lazyDone()
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	// Large transactions commit on their own, after the batch (doAlone).
	rest := live[:0:0]
	var alone []*gcRequest
	for _, r := range live {
		if r.alone {
			alone = append(alone, r)
		} else {
			rest = append(rest, r)
		}
	}
	defer func() {
		for _, r := range alone {
			if err := g.setSync(false); err != nil {
				r.done <- err
				continue
			}
			r.done <- g.s.once(r.ctx, g.s.d.TxOptions, r.fn)
		}
	}()
	live = rest
	if len(live) == 0 {
		return
	}
	hintsOnly := true
	for _, r := range live {
		hintsOnly = hintsOnly && r.hint
	}
	if err := g.setSync(hintsOnly); err != nil {
		lazyDone()
		for _, r := range live {
			r.done <- err
		}
		return
	}
	if len(live) == 1 { // without commit's slice
		err := g.s.onceDetached(live[0].ctx, g.s.d.TxOptions, live[0].fn, true)
		lazyDone()
		live[0].done <- err
		return
	}
	errs := g.commit(live)
	lazyDone()
	for i, err := range errs {
		live[i].done <- err
	}
}

// commit runs batch's transactions, sharing one COMMIT when there are
// several, and returns each one's error.
func (g *groupCommitter) commit(batch []*gcRequest) []error {
	return g.commitGuarded(batch, false)
}

// commitGuarded is commit; guarded puts every transaction of a shared
// batch behind a savepoint (shared).
func (g *groupCommitter) commitGuarded(batch []*gcRequest, guarded bool) []error {
	if len(batch) == 1 {
		return []error{g.s.onceDetached(batch[0].ctx, g.s.d.TxOptions, batch[0].fn, true)}
	}
	errs, err := g.shared(batch, guarded)
	if err != nil {
		// The batch as a whole failed and nothing of it is durable: each
		// transaction runs again on its own.
		errs = make([]error, len(batch))
		for i, r := range batch {
			errs[i] = g.s.onceDetached(r.ctx, g.s.d.TxOptions, r.fn, true)
		}
	}
	return errs
}

// shared runs the batch's transactions in one database transaction, each
// behind a savepoint, and commits. It returns each function's own error,
// or an error for the batch as a whole (then nothing was committed).
//
// Two need no savepoint: a lazy hint (one statement, which SQLite undoes
// by itself when it fails) and the batch's last transaction (nothing runs
// after it). When one of those fails, the whole transaction is rolled
// back — the failure may have ended it (an I/O error), and the last one's
// earlier statements must not commit — and the others commit without it
// (commit: they run again, as a batch whose failure runs each again
// alone); the last then runs again alone, as after a failed batch, and
// a lazy hint is dropped with its error. Failures are rare (an unknown command's result,
// a refused enqueue), the savepoints' statements were on every batch: a
// round trip's result batch (the poll's sent mark, then the result) runs
// BEGIN, the mark, the result and COMMIT, four SAVEPOINT/RELEASE fewer.
// The others run again guarded: every one behind a savepoint, so a
// failure among them is its own and no reason to run the rest again. Run
// again unguarded, each failing last transaction (a device can send
// results for commands that do not exist as fast as it likes) made the
// batch before it run again, on the order of n²/2 transactions for n
// failing ones: 1,583 function runs for a batch of 64 (one succeeding),
// 128 now (TestSharedBatchFailuresRunEachAtMostTwice; Session 12 —
// attack).
func (g *groupCommitter) shared(batch []*gcRequest, guarded bool) ([]error, error) {
	s := g.s
	// The batch's own context: no single caller's cancellation may roll
	// back the others' work (database/sql rolls a transaction back when
	// the context it began with ends).
	ctx := context.Background()
	t, err := s.w.DB.BeginTx(ctx, s.d.TxOptions)
	if err != nil {
		return nil, err
	}
	tx := &Tx{Tx: t, d: s.d, db: s.w, detached: true}
	defer func() {
		for _, q := range tx.want {
			s.w.stmt(ctx, q)
		}
	}()
	errs := make([]error, len(batch))
	for i, r := range batch {
		if !guarded && (r.lazy || i == len(batch)-1) {
			if err := r.fn(tx); err != nil {
				t.Rollback()
				others := append(append(make([]*gcRequest, 0, len(batch)-1), batch[:i]...), batch[i+1:]...)
				oerrs := g.commitGuarded(others, true)
				copy(errs, oerrs[:i])
				copy(errs[i+1:], oerrs[i:])
				errs[i] = err
				if !r.lazy {
					// As if the batch had failed: alone, it runs again
					// in a transaction of its own (an error that ended
					// the shared transaction is not its own).
					errs[i] = g.s.onceDetached(r.ctx, g.s.d.TxOptions, r.fn, true)
				}
				return errs, nil
			}
			continue
		}
		// The savepoint's statements through the statement cache
		// (tx.ExecContext): run directly on t, each was parsed and
		// planned again for every transaction of a shared batch.
		if _, err := tx.ExecContext(ctx, "SAVEPOINT gc"); err != nil {
			t.Rollback()
			return nil, err
		}
		if errs[i] = r.fn(tx); errs[i] != nil {
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO gc"); err != nil {
				t.Rollback()
				return nil, err
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE gc"); err != nil {
			t.Rollback()
			return nil, err
		}
	}
	if err := t.Commit(); err != nil {
		return nil, err
	}
	return errs, nil
}

// groupExec runs a single write statement of the writer pool as a
// transaction of the next batch.
func (g *groupCommitter) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := g.do(ctx, func(tx *Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, q, args...)
		return err
	})
	return res, err
}

// writeRow runs a single write statement that returns a row (INSERT …
// RETURNING) on the writer and scans it into dest: with group commit as a
// transaction of the next batch (the row is read before the batch
// commits), otherwise directly.
func (s *Store) writeRow(ctx context.Context, q string, args []any, dest ...any) error {
	if s.gc == nil {
		return s.w.QueryRowContext(ctx, q, args...).Scan(dest...)
	}
	return s.gc.do(ctx, func(tx *Tx) error { return tx.QueryRowContext(ctx, q, args...).Scan(dest...) })
}

// Arrive counts a device request in progress until the returned function
// is called (once, when the request has been answered): with group
// commit, a batch with a durable write waits up to commitDelay for the
// writes of such requests when at least commitSiblings of them are in
// progress besides its own (groupCommitter.gather). Without group commit
// (PostgreSQL) it counts nothing. Safe for concurrent use; the returned
// function is idempotent.
func (s *Store) Arrive() (leave func()) {
	if s.gc == nil {
		return func() {}
	}
	s.gc.open.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.gc.open.Add(-1)
			select {
			case s.gc.left <- struct{}{}:
			default:
			}
		})
	}
}

// DeviceRequestsInProgress is how many device requests Arrive counts now
// (0 without group commit).
func (s *Store) DeviceRequestsInProgress() int64 {
	if s.gc == nil {
		return 0
	}
	return s.gc.open.Load()
}

// GroupCommitCounts reports the group committer's batches and the
// transactions they held since the store opened (both 0 without group
// commit): transactions/batches is the mean batch size, and each batch
// with a durable write is one COMMIT with its fsync.
func (s *Store) GroupCommitCounts() (batches, transactions int64) {
	if s.gc == nil {
		return 0, 0
	}
	return s.gc.batches.Load(), s.gc.txs.Load()
}
