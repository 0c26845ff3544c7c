package reconcile

import (
	"fmt"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/benchprofile"
)

// BenchmarkPlanNewDevice is the reconciler's in-memory cost per device
// for one profile with a per-user variable that the device lacks: render
// (parse, substitute, marshal, hash) and plan.
func BenchmarkPlanNewDevice(b *testing.B) {
	p := []Profile{{ProfileID: "pr_1", Identifier: "com.example.bench.wifi", Version: 1, Plist: []byte(benchprofile.WiFi), Included: true}}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		acts, _ := Plan(Device{Platform: "iOS", OSVersion: "18.2", Values: map[string]string{"EMAIL": fmt.Sprint("u", i, "@example.com")}}, p, nil, now)
		if len(acts) != 1 || acts[0].Kind != Install {
			b.Fatal(acts)
		}
	}
}
