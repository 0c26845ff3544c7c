package sqlstore

import (
	"context"
	"errors"
	"fmt"
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
