package jobs_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/jobs"
)

// leases is an in-memory Leaser: a lease is held until its ttl ends.
type leases struct {
	mu   sync.Mutex
	held map[string]struct {
		holder string
		until  time.Time
	}
}

func (l *leases) TryLease(_ context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.held[name]; ok && h.holder != holder && now.Before(h.until) {
		return false, nil
	}
	l.held[name] = struct {
		holder string
		until  time.Time
	}{holder, now.Add(ttl)}
	return true, nil
}

func TestEveryRunsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	jobs.Every(ctx, 0, time.Millisecond, func(context.Context) {
		n++
		if n == 3 {
			cancel()
		}
	})
	if n != 3 {
		t.Fatalf("passes = %d, want 3 (stopped by the cancel in the third)", n)
	}
}

func TestOneInstancePerLease(t *testing.T) {
	l := &leases{held: map[string]struct {
		holder string
		until  time.Time
	}{}}
	a, b := &jobs.Runner{Leases: l, Instance: "a"}, &jobs.Runner{Leases: l, Instance: "b"}
	ctx := context.Background()
	if !a.Leased(ctx, "repush", time.Hour) {
		t.Fatal("a: the free lease was refused")
	}
	if b.Leased(ctx, "repush", time.Hour) {
		t.Fatal("b took the lease a holds")
	}
	if !a.Leased(ctx, "repush", time.Hour) {
		t.Fatal("a: its own lease was refused")
	}
	if !b.Leased(ctx, "other", time.Hour) {
		t.Fatal("b: another name's lease was refused")
	}

	// A job whose lease another instance holds skips its passes.
	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	ran := 0
	b.Run(ctx, jobs.Job{Lease: "repush", LeaseTTL: time.Hour, Interval: time.Millisecond, Run: func(context.Context) { ran++ }})
	if ran != 0 {
		t.Fatalf("b ran %d passes under a's lease", ran)
	}
}
