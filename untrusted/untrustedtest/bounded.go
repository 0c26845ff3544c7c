// Package untrustedtest holds test helpers for code that handles hostile
// input: a cost bound per call, and the hostile inputs themselves (from
// package untrusted's testdata) for regression tests and fuzz seeds.
package untrustedtest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// Bounded runs f and fails t if f costs more than d of CPU time or the
// process allocates more than maxAlloc bytes (the runtime/metrics counter
// /gc/heap/allocs:bytes, which includes other goroutines: give room)
// while it runs.
//
// The time is the process's CPU time (user + system, getrusage; wall time
// where that is not available), not wall time: go test runs packages side
// by side, and on a loaded CI machine a decode that takes 0.17 s alone took
// more than 2 s of wall time (stop 22), while the faults these bounds exist
// for cost minutes (big.Int's quadratic decimal conversion: 3 min 13 s for
// 8 MB; smallstep/pkcs7's nested BER: 24 s for 90 bytes). Under the race
// detector d is multiplied by RaceSlowdown.
//
// The cost is watched while f runs: a call that would take minutes or
// gigabytes (as the hostile inputs did before package untrusted) cannot be
// stopped, so a breach panics, ending the test binary (a fuzzer records the
// input as a crasher) instead of letting the call eat the machine.
func Bounded(t testing.TB, d time.Duration, maxAlloc uint64, f func()) {
	t.Helper()
	d *= RaceSlowdown
	base := allocated()
	start := cpuTime()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		f()
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case p := <-done:
			if p != nil {
				panic(p)
			}
			if used := allocated() - base; used > maxAlloc {
				t.Fatalf("allocated %d MiB (at most %d MiB)", used>>20, maxAlloc>>20)
			}
			if el := cpuTime() - start; el > d {
				t.Fatalf("took %v of CPU time (at most %v)", el, d)
			}
			return
		case <-tick.C:
			if used := allocated() - base; used > maxAlloc {
				panic(fmt.Sprintf("%s: allocated %d MiB and still running (at most %d MiB)", t.Name(), used>>20, maxAlloc>>20))
			}
			if el := cpuTime() - start; el > d {
				panic(fmt.Sprintf("%s: took %v of CPU time and still running (at most %v)", t.Name(), el, d))
			}
		}
	}
}

// allocated reads the process's cumulative heap allocation without
// stopping the world (runtime.ReadMemStats would, twice per fuzz input).
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Hostile inputs kept in package untrusted's testdata (see its README).
const (
	// NestedBER is 512 bytes of nested definite-length BER whose children
	// overrun their parents: smallstep/pkcs7's ber2der re-reads them at
	// every level (×4 work per 2 levels; 90 bytes already took 24 s and
	// 1.2 GB).
	NestedBER = "nested-definite.ber"
	// SelfReference is a 45-byte bplist00 whose array contains itself
	// (micromdm/plist: fatal stack overflow).
	SelfReference = "self-reference.bplist"
	// Data64GiB is a 51-byte bplist00 declaring a 64 GiB data object
	// (micromdm/plist: fatal out of memory).
	Data64GiB = "data-64gib.bplist"
	// IndexOutOfRange is a 45-byte bplist00 whose array refers to object
	// 2 of 2 (micromdm/plist: index out of range panic).
	IndexOutOfRange = "index-out-of-range.bplist"
)

// BinaryPlists are the three hostile binary property lists.
var BinaryPlists = []string{SelfReference, Data64GiB, IndexOutOfRange}

// Read returns a hostile input by name from untrusted/testdata.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
