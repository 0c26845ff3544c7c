package untrustedtest

import (
	"testing"
	"time"
)

// TestCPUTime: Bounded's clock counts work, not waiting, so a loaded CI
// machine (other test binaries running) does not fail a cheap call, while a
// call that burns CPU still does.
func TestCPUTime(t *testing.T) {
	start := cpuTime()
	time.Sleep(200 * time.Millisecond)
	if slept := cpuTime() - start; slept > 50*time.Millisecond {
		t.Fatalf("sleeping 200 ms counted %v of CPU time", slept)
	}
	// Busy work until the clock has counted 100 ms: on a loaded machine
	// that takes longer in wall time, but it must come.
	start = cpuTime()
	giveUp := time.Now().Add(time.Minute)
	for x := 0; cpuTime()-start < 100*time.Millisecond; x++ {
		if time.Now().After(giveUp) {
			t.Fatalf("a minute of busy loop counted %v of CPU time", cpuTime()-start)
		}
	}
}
