package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// A batch of hints only commits with synchronous=NORMAL (no fsync); any
// batch with a durable write — alone, after hints, or mixed with them —
// commits with FULL. The level is read back from the writer connection.
func TestHintBatchesOnlyLowerSynchronous(t *testing.T) {
	ctx := context.Background()
	s, _ := groupCommitStore(t)
	if _, err := s.w.DB.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	level := func() int {
		t.Helper()
		var n int
		if err := s.w.DB.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const normal, full = 1, 2
	write := func(k int) func(*Tx) error {
		return func(tx *Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, 1)`, k)
			return err
		}
	}
	req := func(k int, hint bool) *gcRequest {
		return &gcRequest{ctx: ctx, fn: write(k), done: make(chan error, 1), hint: hint}
	}
	if _, err := s.hint(ctx, `INSERT INTO t (k, v) VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	if got := level(); got != normal {
		t.Fatalf("after a hint: synchronous=%d, want NORMAL", got)
	}
	if err := s.tx(ctx, write(2)); err != nil {
		t.Fatal(err)
	}
	if got := level(); got != full {
		t.Fatalf("after a durable write: synchronous=%d, want FULL", got)
	}
	for i, batch := range [][]*gcRequest{
		{req(3, true), req(4, true)},  // hints only: NORMAL
		{req(5, true), req(6, false)}, // mixed: FULL
		{req(7, true), req(8, true)},
		{req(9, false)},
	} {
		s.gc.run(batch)
		for _, r := range batch {
			if err := <-r.done; err != nil {
				t.Fatal(err)
			}
		}
		want := full
		if i%2 == 0 {
			want = normal
		}
		if got := level(); got != want {
			t.Fatalf("batch %d: synchronous=%d, want %d", i, got, want)
		}
	}
	var n int
	if err := s.r.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 9 {
		t.Fatalf("%d rows, %v", n, err)
	}
}

// TouchChannel is a hint: with group commit it commits with
// synchronous=NORMAL (no fsync of its own), and writes both last-seen
// times, or neither for a channel of another enrollment.
func TestTouchChannelIsAHint(t *testing.T) {
	ctx := context.Background()
	s, _ := groupCommitStore(t)
	for _, q := range []string{`CREATE TABLE enrollments (id TEXT PRIMARY KEY, last_seen_at INTEGER NOT NULL DEFAULT 0)`,
		`CREATE TABLE channels (id TEXT PRIMARY KEY, enrollment_ref TEXT NOT NULL, last_seen_at INTEGER NOT NULL DEFAULT 0)`,
		`INSERT INTO enrollments (id) VALUES ('e1'), ('e2')`, `INSERT INTO channels (id, enrollment_ref) VALUES ('c1', 'e1')`} {
		if _, err := s.w.DB.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	seen := func(table, id string) (v int64) {
		t.Helper()
		if err := s.r.DB.QueryRowContext(ctx, `SELECT last_seen_at FROM `+table+` WHERE id = ?`, id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	at := time.UnixMicro(1_700_000_000_000_000)
	if err := s.TouchChannel(ctx, "e2", "c1", at); err != nil {
		t.Fatal(err)
	}
	if seen("channels", "c1") != 0 || seen("enrollments", "e2") != 0 {
		t.Fatal("another enrollment's channel was touched")
	}
	if err := s.TouchChannel(ctx, "e1", "c1", at); err != nil {
		t.Fatal(err)
	}
	var level int
	if err := s.w.DB.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&level); err != nil || level != 1 {
		t.Fatalf("TouchChannel committed with synchronous=%d (%v), want NORMAL (1)", level, err)
	}
	if seen("channels", "c1") != at.UnixMicro() || seen("enrollments", "e1") != at.UnixMicro() {
		t.Fatal("last seen not written")
	}
}

// A large transaction (doAlone) commits on its own, never behind a
// savepoint of a shared batch: the batch it arrived with has committed
// before it runs (another connection sees those rows from inside it), it
// commits with synchronous=FULL even after a batch of hints, and its
// failure is its own.
func TestAloneTransactionsCommitOnTheirOwn(t *testing.T) {
	ctx := context.Background()
	s, dsn := groupCommitStore(t)
	other, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := s.w.DB.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	write := func(k int) func(*Tx) error {
		return func(tx *Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, 1)`, k)
			return err
		}
	}
	seen := -1
	alone := &gcRequest{ctx: ctx, done: make(chan error, 1), alone: true, fn: func(tx *Tx) error {
		if err := other.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&seen); err != nil {
			return err
		}
		return write(3)(tx)
	}}
	failing := &gcRequest{ctx: ctx, done: make(chan error, 1), alone: true, fn: func(tx *Tx) error {
		if err := write(5)(tx); err != nil {
			return err
		}
		return sql.ErrTxDone // any error of its own
	}}
	batch := []*gcRequest{
		{ctx: ctx, fn: write(1), done: make(chan error, 1), hint: true},
		alone,
		{ctx: ctx, fn: write(2), done: make(chan error, 1), hint: true},
	}
	s.gc.run(batch)
	for _, r := range batch {
		if err := <-r.done; err != nil {
			t.Fatal(err)
		}
	}
	if seen != 2 {
		t.Fatalf("inside the alone transaction another connection saw %d rows of its batch, want 2 (committed before it)", seen)
	}
	var level int
	if err := s.w.DB.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&level); err != nil || level != 2 {
		t.Fatalf("synchronous=%d after an alone transaction (want FULL, 2): %v", level, err)
	}
	batch = []*gcRequest{failing, {ctx: ctx, fn: write(4), done: make(chan error, 1)}}
	s.gc.run(batch)
	if err := <-failing.done; err != sql.ErrTxDone {
		t.Fatalf("failing alone transaction: %v", err)
	}
	if err := <-batch[1].done; err != nil {
		t.Fatal(err)
	}
	var ks []int
	rows, err := other.QueryContext(ctx, `SELECT k FROM t ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k int
		rows.Scan(&k)
		ks = append(ks, k)
	}
	rows.Close()
	if fmt.Sprint(ks) != "[1 2 3 4]" {
		t.Fatalf("rows %v, want [1 2 3 4]", ks)
	}
}

// groupCommitStore is a Store with group commit over a new SQLite file in
// WAL mode with synchronous=FULL (the level a durable batch commits
// with), one writer connection, and that file's DSN; closed when the test
// ends.
func groupCommitStore(t *testing.T) (*Store, string) {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "db") + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	s := New(Dialect{Name: "sqlite", GroupCommit: true}, w, w, "test")
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

// A lazy hint (doHintLater, a poll's sent mark) returns before it runs,
// is held while nothing durable comes, and then shares the next durable
// batch's one COMMIT: the durable transaction sees it (FIFO), another
// connection sees neither before that COMMIT and both after it. settle
// makes a held hint visible to the read pool; Close commits one still
// held.
func TestLazyHintRidesWithTheNextDurableBatch(t *testing.T) {
	ctx := context.Background()
	s, dsn := groupCommitStore(t)
	s.gc.hold = time.Hour // only a durable write, settle or Close ends the wait
	other, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := s.w.DB.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	count := func(db *sql.DB) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	lazy := func(k int) {
		t.Helper()
		if err := s.gc.doHintLater(func(tx *Tx) error {
			_, err := tx.ExecContext(context.Background(), `INSERT INTO t (k, v) VALUES (?, 1)`, k)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	lazy(1)
	time.Sleep(20 * time.Millisecond) // the committer holds it
	if n := count(other); n != 0 {
		t.Fatalf("a held lazy hint is visible to another connection (%d rows)", n)
	}
	inside, outside := -1, -1
	if err := s.tx(ctx, func(tx *Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&inside); err != nil {
			return err
		}
		outside = count(other)
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (2, 1)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside != 1 || outside != 0 {
		t.Fatalf("inside the durable transaction: it saw %d rows (want the hint's 1), another connection %d (want 0: one COMMIT for both)", inside, outside)
	}
	if n := count(other); n != 2 {
		t.Fatalf("after the durable commit %d rows, want 2", n)
	}
	if s.gc.lazy.Load() != 0 {
		t.Fatalf("%d lazy hints still counted after their commit", s.gc.lazy.Load())
	}
	lazy(3)
	if err := s.gc.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(s.r.DB); n != 3 {
		t.Fatalf("after settle %d rows, want 3", n)
	}
	var level int
	if err := s.w.DB.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&level); err != nil || level != 1 {
		t.Fatalf("a batch of hints only committed with synchronous=%d (%v), want NORMAL (1)", level, err)
	}
	lazy(4)
	time.Sleep(20 * time.Millisecond)
	s.Close()
	if n := count(other); n != 4 {
		t.Fatalf("after Close %d rows, want 4 (the held hint committed)", n)
	}
}

// In a shared batch the lazy hints and the last transaction run without a
// savepoint; when one of them fails, nothing of it stays, the others
// commit, and each caller gets its own error.
func TestSharedBatchFailuresWithoutSavepoints(t *testing.T) {
	ctx := context.Background()
	s, _ := groupCommitStore(t)
	if _, err := s.w.DB.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	errOwn := fmt.Errorf("its own error")
	write := func(ks ...int) func(*Tx) error {
		return func(tx *Tx) error {
			for _, k := range ks {
				if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, 1)`, k); err != nil {
					return err
				}
			}
			return nil
		}
	}
	failing := func(ks ...int) func(*Tx) error {
		return func(tx *Tx) error {
			if err := write(ks...)(tx); err != nil {
				return err
			}
			return errOwn
		}
	}
	type req struct {
		fn      func(*Tx) error
		lazy    bool
		wantErr bool
	}
	for _, tc := range []struct {
		name string
		reqs []req
		want string // the keys in t afterwards
	}{
		{"all succeed", []req{{fn: write(1), lazy: true}, {fn: write(2)}, {fn: write(3, 4)}}, "[1 2 3 4]"},
		{"last fails", []req{{fn: write(1), lazy: true}, {fn: write(2)}, {fn: failing(3, 4), wantErr: true}}, "[1 2]"},
		{"lazy fails", []req{{fn: write(1)}, {fn: write(1), lazy: true, wantErr: true}, {fn: write(2)}}, "[1 2]"},
		{"middle fails behind its savepoint", []req{{fn: write(1), lazy: true}, {fn: failing(2, 3), wantErr: true}, {fn: write(4)}}, "[1 4]"},
		{"only the lazy one succeeds", []req{{fn: write(1), lazy: true}, {fn: failing(2), wantErr: true}}, "[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.w.DB.ExecContext(ctx, `DELETE FROM t`); err != nil {
				t.Fatal(err)
			}
			batch := make([]*gcRequest, len(tc.reqs))
			for i, r := range tc.reqs {
				batch[i] = &gcRequest{ctx: ctx, fn: r.fn, done: make(chan error, 1), hint: r.lazy, lazy: r.lazy}
			}
			s.gc.run(batch)
			for i, r := range batch {
				err := <-r.done
				if (err != nil) != tc.reqs[i].wantErr {
					t.Fatalf("request %d: error %v, want an error: %v", i, err, tc.reqs[i].wantErr)
				}
			}
			var ks []int
			rows, err := s.w.DB.QueryContext(ctx, `SELECT k FROM t ORDER BY k`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var k int
				rows.Scan(&k)
				ks = append(ks, k)
			}
			rows.Close()
			if fmt.Sprint(ks) != tc.want {
				t.Fatalf("rows %v, want %s", ks, tc.want)
			}
		})
	}
}

// A shared batch whose transactions all fail (a device sending results
// for commands that do not exist, many at once) runs each at most twice:
// once shared, once more when the batch's last one failed without a
// savepoint (the others again, each behind one), plus that last one
// alone. Before, each failing last transaction made the rest run again
// unguarded: 1,583 function runs for these 64 requests (128 now).
func TestSharedBatchFailuresRunEachAtMostTwice(t *testing.T) {
	ctx := context.Background()
	s, _ := groupCommitStore(t)
	if _, err := s.w.DB.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	runs := 0
	errOwn := fmt.Errorf("no such command")
	batch := make([]*gcRequest, maxBatch)
	for i := range batch {
		batch[i] = &gcRequest{ctx: ctx, done: make(chan error, 1), fn: func(tx *Tx) error {
			runs++ // only the committer's goroutine runs them
			if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, 1)`, i); err != nil {
				return err
			}
			return errOwn
		}}
	}
	// One that succeeds among them still commits.
	ok := batch[maxBatch/2]
	ok.fn = func(tx *Tx) error {
		runs++
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (-1, 1)`)
		return err
	}
	s.gc.run(batch)
	for i, r := range batch {
		if err := <-r.done; (err != nil) != (r != ok) {
			t.Fatalf("request %d: error %v", i, err)
		}
	}
	var n int
	if err := s.w.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d rows, want the successful one only", n)
	}
	if runs > 2*maxBatch+1 {
		t.Fatalf("%d runs of %d transactions' functions, want at most %d", runs, maxBatch, 2*maxBatch+1)
	}
	t.Logf("%d runs for %d transactions", runs, maxBatch)
}

// A shared batch binds each of its statements to the batch's transaction
// once (Tx.bind), not once per transaction that runs it: database/sql's
// Tx.StmtContext costs a new *sql.Stmt and ~8 allocations a call, and a
// batch's transactions run the same statements (the savepoint's SAVEPOINT
// and RELEASE among them). Counted as the allocations one more
// transaction of three statements (five with its savepoint's) adds to a
// shared batch: 63 when every statement is bound again, 48 now.
func TestSharedBatchBindsEachStatementOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	ctx := context.Background()
	s, _ := groupCommitStore(t)
	s.d.CacheStatements = true
	s.w.d.CacheStatements = true
	if _, err := s.w.DB.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	k := 0
	fn := func(tx *Tx) error {
		k++
		if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, 1)`, k); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRowContext(ctx, `SELECT v FROM t WHERE k = ?`, k).Scan(&v); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE t SET v = v + 1 WHERE k = ?`, k)
		return err
	}
	batch := func(n int) func() {
		return func() {
			reqs := make([]*gcRequest, n)
			for i := range reqs {
				reqs[i] = &gcRequest{ctx: ctx, fn: fn, done: make(chan error, 1)}
			}
			s.gc.run(reqs)
			for _, r := range reqs {
				if err := <-r.done; err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	batch(2)() // the statements prepared on the pool
	small := testing.AllocsPerRun(20, batch(2))
	large := testing.AllocsPerRun(20, batch(18))
	per := (large - small) / 16
	t.Logf("%.0f allocations a batch of 2, %.0f of 18: %.1f per added transaction", small, large, per)
	if per > 55 {
		t.Fatalf("%.1f allocations per added transaction of three statements, want at most 55 (each statement bound once per batch)", per)
	}
}
