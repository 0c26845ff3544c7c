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
	self := &target{pid: os.Getpid()}
	cpu0, _, _ := self.stats()
	var spun time.Duration // the process's CPU while the loop spun
	timer := time.AfterFunc(busyFor, func() {
		cpu, _, _ := self.stats()
		spun = cpu - cpu0 // before the stop, which orders it before <-done
		stop.Store(true)
	})
	defer timer.Stop()
	start := time.Now()
	waited, quiet := settle(context.Background(), self, 20*time.Second)
	<-done
	if !quiet {
		t.Fatalf("settle: not quiet after %s", waited)
	}
	if waited < busyFor || time.Since(start) < busyFor {
		// settle judges by CPU used, not by intent: a spinning loop the
		// machine starved of a core (CI at a load of 50 on 2 cores) is
		// quiet by its measure, and this test cannot tell.
		if spun < busyFor*2*settleIdle/settleTick {
			t.Skipf("the loop got %s of CPU in %s (the machine is too busy for this test)", spun, busyFor)
		}
		t.Fatalf("settle returned after %s while the process was busy for %s (%s of CPU)", waited, busyFor, spun)
	}
	// In process (no pid to read) it does not wait.
	if w, q := settle(context.Background(), &target{}, time.Minute); w != 0 || !q {
		t.Fatalf("in process: %s %v", w, q)
	}
}
