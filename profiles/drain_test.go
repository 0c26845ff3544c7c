package profiles

import (
	"context"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Drain starts its other workers once the first pass has claimed a full
// batch, not after that batch is written: while the first pass's
// ApplyReconcile is held, a second pass must claim (the old drain ran the
// first pass to its end alone, the second claim came only after it).
// Every device still gets its install exactly once.
func TestDrainOverlapsFirstBatch(t *testing.T) {
	j, ov, chs, _ := leaseFleet(t, 300) // batches of 100: three full passes
	j.Workers = 3
	secondClaim := make(chan struct{})
	ov.afterClaim = func(n int32) {
		if n == 2 {
			close(secondClaim)
		}
	}
	overlapped := false
	ov.apply = func(ctx context.Context, n int32, b *store.ReconcileBatch) error {
		if n == 1 {
			select {
			case <-secondClaim:
				overlapped = true
			case <-time.After(3 * time.Second):
			}
		}
		return ov.storeAll.ApplyReconcile(ctx, b)
	}
	j.Drain(context.Background())
	if !overlapped {
		t.Fatalf("no second claim while the first batch was being written (%d claims in all): the workers waited for the first pass", ov.claims.Load())
	}
	if got := ov.applies.Load(); got != 3 {
		t.Fatalf("%d batches written, want 3", got)
	}
	installsOnce(t, ov.storeAll, chs, time.Now().UTC())
}

// A first pass that claims less than a full batch runs alone: no other
// pass is started (the common case, a few devices marked).
func TestDrainSmallBatchAlone(t *testing.T) {
	j, ov, chs, _ := leaseFleet(t, 40)
	j.Workers = 4
	ov.afterClaim = func(int32) {} // counted
	j.Drain(context.Background())
	if c := ov.claims.Load(); c != 1 {
		t.Fatalf("%d claims for 40 due devices and batches of 100, want 1", c)
	}
	installsOnce(t, ov.storeAll, chs, time.Now().UTC())
}
