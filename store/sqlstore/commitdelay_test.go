package sqlstore

import (
	"context"
	"sync"
	"testing"
	"time"
)

// commitDelayStore is groupCommitStore with a table t and commitDelay set
// to delay (long: a test that waited it out would show in its time).
func commitDelayStore(t *testing.T, delay time.Duration) *Store {
	t.Helper()
	s, _ := groupCommitStore(t)
	s.gc.delay = delay
	if _, err := s.w.DB.ExecContext(context.Background(), `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	return s
}

func insert(ctx context.Context, s *Store, k int) error {
	return s.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, 1)`, k)
		return err
	})
}

// With device requests in progress, a durable write waits for theirs
// (commitDelay): four requests whose writes arrive 15 ms apart share one
// batch — one COMMIT, one fsync — and the batch commits as soon as the
// last of them has joined, not after the delay. Without the delay (the
// old committer) they commit as four batches.
func TestCommitDelayGathersSiblings(t *testing.T) {
	ctx := context.Background()
	s := commitDelayStore(t, 5*time.Second)
	const n = 4
	leaves := make([]func(), n)
	for i := range leaves {
		leaves[i] = s.Arrive()
	}
	b0, t0 := s.GroupCommitCounts()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer leaves[i]()
			time.Sleep(time.Duration(i) * 15 * time.Millisecond)
			errs[i] = insert(ctx, s, i)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b1, t1 := s.GroupCommitCounts()
	if b1-b0 != 1 || t1-t0 != n {
		t.Fatalf("%d writes of requests in progress committed in %d batches (%d transactions), want 1 batch", n, b1-b0, t1-t0)
	}
	if took > 2*time.Second {
		t.Fatalf("the batch waited %v: it should commit once every request in progress has joined", took)
	}
	var rows int
	if err := s.r.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&rows); err != nil || rows != n {
		t.Fatalf("%d rows (%v), want %d", rows, err, n)
	}
}

// A lone writer is never delayed: not outside any device request (an API
// write), not as the only request in progress, not with fewer than
// commitSiblings others in progress. And a batch that waits ends as soon
// as the requests it waits for leave without writing (an Idle poll with
// nothing queued).
func TestCommitDelaySparesLoneWriters(t *testing.T) {
	ctx := context.Background()
	s := commitDelayStore(t, 5*time.Second)
	timed := func(what string, k int) {
		t.Helper()
		start := time.Now()
		if err := insert(ctx, s, k); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("%s: the write took %v (delayed)", what, took)
		}
	}
	timed("no request in progress", 1)
	leave := s.Arrive()
	timed("its own request alone in progress", 2)
	other := s.Arrive()
	timed("one other request in progress", 3)
	other()
	other() // idempotent: counted once
	leave()
	if n := s.gc.open.Load(); n != 0 {
		t.Fatalf("%d requests counted in progress after all left", n)
	}

	// Two others in progress: the write waits for them, and commits when
	// they leave (20 ms) without writing.
	leave = s.Arrive()
	a, b := s.Arrive(), s.Arrive()
	go func() {
		time.Sleep(20 * time.Millisecond)
		a()
		b()
	}()
	start := time.Now()
	if err := insert(ctx, s, 4); err != nil {
		t.Fatal(err)
	}
	leave()
	if took := time.Since(start); took < 15*time.Millisecond || took > 2*time.Second {
		t.Fatalf("with two others in progress the write took %v: want it to wait for them (~20 ms), not for the delay (5 s)", took)
	}
}
