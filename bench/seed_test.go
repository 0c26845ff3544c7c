package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"
)

// The seed's writers fail together with errors of different dynamic types
// (a driver's error, a wrapped one, context.Canceled): the seed reports one
// of them instead of panicking, and stops writing.
func TestWriteParallelReportsFirstError(t *testing.T) {
	var entered sync.WaitGroup
	entered.Add(8)
	all := make(chan struct{})
	go func() { entered.Wait(); close(all) }()
	var mu sync.Mutex
	calls := 0
	err := writeParallel(context.Background(), 1000, io.Discard, func(i int) error {
		mu.Lock()
		calls++
		mu.Unlock()
		if i >= 8 {
			return nil
		}
		// The eight workers' first items meet here, then all fail at once.
		entered.Done()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
		}
		switch i % 3 {
		case 0:
			return context.Canceled
		case 1:
			return fmt.Errorf("wrapped: %w", os.ErrClosed)
		default:
			return &os.PathError{Op: "write", Path: "db", Err: errors.ErrUnsupported}
		}
	})
	if err == nil {
		t.Fatal("writeParallel returned nil after every worker failed")
	}
	if calls > 16 {
		t.Errorf("%d items written after the first error (want the workers to stop)", calls)
	}
}

func TestWriteParallelWritesEveryItem(t *testing.T) {
	seen := make([]bool, 25000)
	if err := writeParallel(context.Background(), len(seen), io.Discard, func(i int) error { seen[i] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("item %d never written", i)
		}
	}
}
