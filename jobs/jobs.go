// Package jobs runs Pomona's periodic background work: one timer loop
// (Every) and one cluster-wide lease (Runner.Leased) so that a pass that
// must happen once per interval runs on one instance of a cluster, not on
// all of them. Every periodic job (re-push, push-certificate warnings,
// identity renewal, tombstone purge, webhook deliveries) uses these.
package jobs

import (
	"context"
	"time"
)

// Every runs fn after first, then every interval (counted from the start
// of the previous pass), until ctx ends. Passes never overlap: one that
// overruns the interval is followed at once by the next. first may be 0
// (run at once).
func Every(ctx context.Context, first, interval time.Duration, fn func(context.Context)) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(interval)
		fn(ctx)
	}
}

// Leaser grants named cluster-wide leases (store.Store implements it):
// TryLease reports whether holder now holds name until now+ttl, either
// because nobody held it or its previous lease ran out.
type Leaser interface {
	TryLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error)
}

// Runner runs periodic jobs for one instance of a cluster.
type Runner struct {
	Leases Leaser
	// Instance names this process in the leases (unique per process).
	Instance string
}

// Leased reports whether this instance holds the cluster-wide lease name
// for ttl. A store error counts as not leased: the pass is skipped and
// tried again at the next interval.
func (r *Runner) Leased(ctx context.Context, name string, ttl time.Duration) bool {
	ok, err := r.Leases.TryLease(ctx, name, r.Instance, ttl, time.Now())
	return err == nil && ok
}

// Job is one periodic job that runs once per Interval across a cluster.
type Job struct {
	// Lease names the job's cluster-wide lease, held for LeaseTTL (a
	// little less than Interval, so that the instance of the next pass can
	// take it); empty: every instance runs every pass.
	Lease    string
	LeaseTTL time.Duration
	// First is the delay before the first pass (so that frequent restarts
	// neither starve the job nor hammer the store at start-up).
	First, Interval time.Duration
	// Run does one pass.
	Run func(context.Context)
}

// Run runs j until ctx ends (call it in its own goroutine); a pass whose
// lease another instance holds is skipped.
func (r *Runner) Run(ctx context.Context, j Job) {
	Every(ctx, j.First, j.Interval, func(ctx context.Context) {
		if j.Lease != "" && !r.Leased(ctx, j.Lease, j.LeaseTTL) {
			return
		}
		j.Run(ctx)
	})
}
