package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// A batch of hints only commits with synchronous=NORMAL (no fsync); any
// batch with a durable write — alone, after hints, or mixed with them —
// commits with FULL. The level is read back from the writer connection.
func TestHintBatchesOnlyLowerSynchronous(t *testing.T) {
	ctx := context.Background()
	dsn := "file:" + filepath.Join(t.TempDir(), "db") + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	s := New(Dialect{Name: "sqlite", GroupCommit: true}, w, w, "test")
	defer s.Close()
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
