package renewal

import (
	"fmt"
	"testing"
	"time"
)

// Due spreads a fleet over the first half of the window, the same way on
// every instance.
func TestDue(t *testing.T) {
	notAfter := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, window := range []time.Duration{DefaultWindow, 14 * 24 * time.Hour, time.Hour} {
		t.Run(window.String(), func(t *testing.T) {
			days := map[int64]int{}
			for i := 0; i < 2000; i++ {
				id := fmt.Sprintf("en_%020d", i)
				d := Due(id, notAfter, window)
				if d != Due(id, notAfter, window) {
					t.Fatal("not deterministic")
				}
				if d.Before(notAfter.Add(-window)) || !d.Before(notAfter.Add(-window/2)) {
					t.Fatalf("%s: due %s outside the first half of the window", id, d)
				}
				days[int64(d.Sub(notAfter.Add(-window))/(window/20))]++
			}
			// Ten buckets over the first half: none may hold more than
			// twice its fair share (a fleet must not renew in one hour).
			if len(days) != 10 {
				t.Fatalf("%d of 10 buckets used: %v", len(days), days)
			}
			for b, n := range days {
				if n > 2*2000/10 {
					t.Fatalf("bucket %d holds %d of 2000", b, n)
				}
			}
		})
	}
}
