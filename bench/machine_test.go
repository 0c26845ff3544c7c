package bench

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestMachineBusyCores: the wave's Cores is the number of cores the
// /proc/stat "cpu" line sums, whatever this process's affinity. The old
// code took runtime.NumCPU, which under compare.sh's `taskset -c
// LOAD_CPU` is 1 on a 2-core machine: its "cores busy" read 118–183 %
// (docs/benchmarks.md, Session 17) and waveLimit said "all 1 cores were
// 128 % busy ... the machine's cores limited the rate" for a machine 64 %
// busy.
func TestMachineBusyCores(t *testing.T) {
	stat := "cpu  100 10 50 900 5 0 20 3 0 0\ncpu0 50 5 25 450 2 0 10 1 0 0\ncpu1 50 5 25 450 3 0 10 2 0 0\nintr 1 2 3\nctxt 5\n"
	busy, cores := parseStat(stat)
	if busy != 1830*time.Millisecond || cores != 2 {
		t.Errorf("parseStat: %v, %d cores; want 1.83s, 2", busy, cores)
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Skip("no /proc/stat")
	}
	want := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "cpu") && !strings.HasPrefix(l, "cpu ") {
			want++
		}
	}
	if _, n := machineBusy(); n != want {
		t.Errorf("machineBusy: %d cores, /proc/stat has %d", n, want)
	}
}
