package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Session 11 attack: a request handed to the group committer after Close
// is refused, never left waiting. Before, submit's select could pick the
// send to reqs (it has room) over the closed stop channel, after the
// committer had drained reqs and returned: the caller then waited for an
// answer forever (a goroutine stuck in a handler or job at shutdown), and
// a lazy hint was counted pending for ever, so every settle after it
// queued an empty hint behind it.
func TestAttack11RequestsAfterCloseAreRefused(t *testing.T) {
	ctx := context.Background()
	s, _ := groupCommitStore(t)
	if err := s.gc.do(ctx, func(*Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	s.gc.close()
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 40; i++ {
			for _, call := range []func() error{
				func() error { return s.gc.do(ctx, func(*Tx) error { return nil }) },
				func() error { return s.gc.doHint(ctx, func(*Tx) error { return nil }) },
				func() error { return s.gc.doAlone(ctx, func(*Tx) error { return nil }) },
				func() error { return s.gc.doHintLater(func(*Tx) error { return nil }) },
			} {
				if err := call(); !errors.Is(err, errStoreClosed) {
					done <- fmt.Errorf("call %d: %v", i, err)
					return
				}
			}
			// Nothing pending: settle has nothing to wait for.
			if err := s.gc.settle(ctx); err != nil && !errors.Is(err, errStoreClosed) {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after Close: %v, want errStoreClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a request after Close waits for ever")
	}
	if n := s.gc.lazy.Load(); n != 0 {
		t.Fatalf("%d lazy hints counted pending after Close (settle would wait for them)", n)
	}
}

// Session 11 attack: many callers at once, mixing durable writes,
// failures, panics, cancelled contexts, lazy hints (which share batches
// without savepoints) and large transactions. Whatever the batching, a
// caller answered without an error has its row committed, a caller
// answered with one has nothing of it committed, and every lazy hint
// lands (none of them fails).
func TestAttack11GroupCommitAnswersMatchWhatCommitted(t *testing.T) {
	ctx := context.Background()
	s, _ := groupCommitStore(t)
	if _, err := s.w.DB.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	errOwn := errors.New("its own error")
	const workers, each = 8, 150
	type outcome struct {
		k    int
		lazy bool
		err  error
	}
	out := make(chan outcome, workers*each)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				k := w*each + i
				ins := func(ctx context.Context, tx *Tx, k int) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (?, 1)`, k)
					return err
				}
				switch i % 7 {
				case 0: // fine
					out <- outcome{k: k, err: s.gc.do(ctx, func(tx *Tx) error { return ins(ctx, tx, k) })}
				case 1: // fails after its write
					out <- outcome{k: k, err: s.gc.do(ctx, func(tx *Tx) error {
						if err := ins(ctx, tx, k); err != nil {
							return err
						}
						return errOwn
					})}
				case 2: // panics after its write
					out <- outcome{k: k, err: s.gc.do(ctx, func(tx *Tx) error {
						if err := ins(ctx, tx, k); err != nil {
							return err
						}
						panic("attack")
					})}
				case 3: // its context ends during its transaction
					cctx, cancel := context.WithCancel(ctx)
					out <- outcome{k: k, err: s.gc.do(cctx, func(tx *Tx) error {
						if err := ins(cctx, tx, k); err != nil {
							return err
						}
						cancel()
						_, err := tx.ExecContext(cctx, `UPDATE t SET v = 2 WHERE k = ?`, k)
						return err
					})}
					cancel()
				case 4: // a lazy hint
					out <- outcome{k: k, lazy: true, err: s.gc.doHintLater(func(tx *Tx) error { return ins(context.Background(), tx, k) })}
				case 5: // a hint waited for
					out <- outcome{k: k, err: s.gc.doHint(ctx, func(tx *Tx) error { return ins(ctx, tx, k) })}
				case 6: // a large transaction, alone
					out <- outcome{k: k, err: s.gc.doAlone(ctx, func(tx *Tx) error { return ins(ctx, tx, k) })}
				}
			}
		}(w)
	}
	wg.Wait()
	close(out)
	if err := s.gc.settle(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.gc.lazy.Load(); n != 0 {
		t.Fatalf("%d lazy hints pending after settle", n)
	}
	present := map[int]int{}
	rows, err := s.r.DB.QueryContext(ctx, `SELECT k, v FROM t`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, v int
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		present[k] = v
	}
	rows.Close()
	answered := 0
	for o := range out {
		answered++
		v, ok := present[o.k]
		switch {
		case o.lazy && (o.err != nil || !ok):
			t.Errorf("lazy hint %d: %v, committed %v", o.k, o.err, ok)
		case !o.lazy && o.err == nil && !ok:
			t.Errorf("request %d answered without an error, its row is not there", o.k)
		case !o.lazy && o.err != nil && ok:
			t.Errorf("request %d answered %v, its row (v=%d) was committed", o.k, o.err, v)
		}
	}
	if answered != workers*each {
		t.Fatalf("%d answers, want %d", answered, workers*each)
	}
}
