package profiles

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// overtakingStore lets a test run a second pass of the same Job while
// the first is in flight, as a second worker of one instance would when
// the first pass outlives its lease.
type overtakingStore struct {
	storeAll
	claims, applies atomic.Int32
	afterClaim      func(n int32)
	apply           func(ctx context.Context, n int32, b *store.ReconcileBatch) error
}

func (o *overtakingStore) ClaimReconcile(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]store.DirtyEnrollment, []store.ReconcileInput, error) {
	ds, ins, err := o.storeAll.ClaimReconcile(ctx, holder, now, lease, limit)
	if o.afterClaim != nil {
		o.afterClaim(o.claims.Add(1))
	}
	return ds, ins, err
}

func (o *overtakingStore) ApplyReconcile(ctx context.Context, b *store.ReconcileBatch) error {
	if o.apply != nil {
		return o.apply(ctx, o.applies.Add(1), b)
	}
	return o.storeAll.ApplyReconcile(ctx, b)
}

// leaseFleet is a job over an overtakingStore of n devices in a group
// with a profile, with a clock the test moves.
func leaseFleet(t *testing.T, n int) (*Job, *overtakingStore, []string, func(time.Duration) time.Time) {
	s := emptyStore(t)
	chs := fleet(t, s, n)
	var mu sync.Mutex
	clock := time.Now().UTC()
	ov := &overtakingStore{storeAll: s}
	j := job(ov, "inst")
	j.Batch, j.Lease = 100, time.Minute
	j.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) time.Time { mu.Lock(); defer mu.Unlock(); clock = clock.Add(d); return clock }
	return j, ov, chs, advance
}

// A pass that outlives its lease while another worker of the same Job
// claims its enrollments again and writes its batch first: the late
// pass's batch is refused (ErrClaimLost), every device gets its install
// exactly once.
func TestPassOutlivingItsLease(t *testing.T) {
	j, ov, chs, advance := leaseFleet(t, 5)
	var second Report
	var secondErr error
	ov.afterClaim = func(n int32) {
		if n == 1 {
			advance(2 * time.Minute) // the first pass's claims expire
			second, secondErr = j.Run(context.Background())
		}
	}
	first, err := j.Run(context.Background())
	if secondErr != nil || second.Claimed != len(chs) || second.Installs != len(chs) {
		t.Fatalf("the overtaking pass: %+v %v", second, secondErr)
	}
	if !errors.Is(err, store.ErrClaimLost) || first.Claimed != len(chs) {
		t.Fatalf("the late pass: %+v %v, want ErrClaimLost", first, err)
	}
	// Nothing is due before the next verification.
	installsOnce(t, ov.storeAll, chs, advance(0).Add(time.Hour))
}

// The same, but the late pass writes while the overtaking pass is
// between its claim and its write. Before every pass claimed under a
// name of its own, both claimed as the instance: the late batch found
// "its" claims held and was written, then the other's too — every
// device got two InstallProfile commands.
func TestPassOutlivingItsLeaseWritesFirst(t *testing.T) {
	j, ov, chs, advance := leaseFleet(t, 5)
	var late *store.ReconcileBatch
	var lateErr, secondErr error
	var second Report
	ov.apply = func(ctx context.Context, n int32, b *store.ReconcileBatch) error {
		switch n {
		case 1: // the late pass's write: first another pass claims again
			late = b
			advance(2 * time.Minute)
			second, secondErr = j.Run(ctx)
			return lateErr
		case 2: // the overtaking pass's write: the late batch lands first
			lateErr = ov.storeAll.ApplyReconcile(ctx, late)
		}
		return ov.storeAll.ApplyReconcile(ctx, b)
	}
	first, err := j.Run(context.Background())
	if secondErr != nil || second.Claimed != len(chs) || second.Installs != len(chs) {
		t.Fatalf("the overtaking pass: %+v %v", second, secondErr)
	}
	if !errors.Is(err, store.ErrClaimLost) || first.Claimed != len(chs) {
		t.Fatalf("the late pass: %+v %v, want ErrClaimLost", first, err)
	}
	// Nothing is due before the next verification.
	installsOnce(t, ov.storeAll, chs, advance(0).Add(time.Hour))
}
