package sqlstore

import (
	"context"
	"runtime/metrics"
	"testing"
)

// goroutinesCreated is the process's count of goroutines started so far.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// The group committer's transactions run to their end whatever happens
// to the caller's context once they have started (Tx.detach): a caller
// that goes away mid-transaction neither fails it nor, in a shared
// batch, the others' work; the answer says what committed. Before, the
// statement after the cancellation failed with context.Canceled.
func TestCommitterTransactionsIgnoreCallerCancellation(t *testing.T) {
	s, _ := groupCommitStore(t)
	bg := context.Background()
	if _, err := s.w.DB.ExecContext(bg, `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	err := s.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (1, 1)`); err != nil {
			return err
		}
		cancel() // the caller goes away mid-transaction
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (2, ?)`, n)
		return err
	})
	if err != nil {
		t.Fatalf("a transaction whose caller went away mid-way: %v, want it committed", err)
	}
	var n int
	if err := s.w.DB.QueryRowContext(bg, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows (%v), want both committed", n, err)
	}
	// A request whose context ended before its turn is still not run.
	if err := s.tx(ctx, func(tx *Tx) error { t.Error("ran a cancelled request"); return nil }); err == nil {
		t.Fatal("a request cancelled before its turn answered nil")
	}
}

// With a context that can be cancelled (every HTTP request's), a
// committer transaction starts only the goroutines database/sql starts
// whatever the context (one per transaction, one per row set of a
// transaction, both watching the transaction's own context): none for
// the caller's context — database/sql's watcher of it per row set and
// modernc's driver's per statement and per BEGIN (interruptOnDone), each
// a goroutine start, a wake-up and a few allocations.
func TestCommitterTransactionsStartNoGoroutines(t *testing.T) {
	s, _ := groupCommitStore(t)
	bg := context.Background()
	if _, err := s.w.DB.ExecContext(bg, `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	fn := func(k int) func(*Tx) error {
		return func(tx *Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, ?)`, k, n)
			return err
		}
	}
	if err := s.tx(ctx, fn(0)); err != nil { // statements prepared
		t.Fatal(err)
	}
	const runs = 50
	before := goroutinesCreated()
	for k := 1; k <= runs; k++ {
		if err := s.tx(ctx, fn(k)); err != nil {
			t.Fatal(err)
		}
	}
	got := goroutinesCreated() - before
	t.Logf("%d goroutines started for %d transactions", got, runs)
	// database/sql's two, and a little slack for the runtime's own.
	if got > 2*runs+runs/10 {
		t.Fatalf("%d goroutines started for %d transactions of a query and an insert, want 2 per transaction", got, runs)
	}
}
