package bench

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// settle must not start the wave while the server still works (the
// assignment's push fan-out): it waits out a busy process — this one, busy
// for busyFor — and then reports it quiet.
func TestSettleWaitsForQuiet(t *testing.T) {
	const busyFor = 700 * time.Millisecond
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		x := 0
		for !stop.Load() {
			x++
		}
		_ = x
	}()
	timer := time.AfterFunc(busyFor, func() { stop.Store(true) })
	defer timer.Stop()
	start := time.Now()
	waited, quiet := settle(context.Background(), &target{pid: os.Getpid()}, 20*time.Second)
	<-done
	if !quiet {
		t.Fatalf("settle: not quiet after %s", waited)
	}
	if waited < busyFor || time.Since(start) < busyFor {
		t.Fatalf("settle returned after %s while the process was busy for %s", waited, busyFor)
	}
	// In process (no pid to read) it does not wait.
	if w, q := settle(context.Background(), &target{}, time.Minute); w != 0 || !q {
		t.Fatalf("in process: %s %v", w, q)
	}
}
