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
	start = cpuTime()
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
	}
	if busy := cpuTime() - start; busy < 100*time.Millisecond {
		t.Fatalf("200 ms of busy loop counted %v of CPU time", busy)
	}
}
