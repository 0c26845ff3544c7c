package push

import (
	"context"
	"log/slog"
	"time"

	"github.com/pomona-mdm/pomona/jobs"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/store"
)

// Re-push: a device that has not come for its commands is woken again.
const (
	RepushWaiting = 5 * time.Minute  // commands waiting this long
	RepushEvery   = 15 * time.Minute // at most one re-push per channel this often
	repushBatch   = 1000             // channels per pass
)

// Repush is the periodic job that wakes again, once a minute on one
// instance of a cluster (lease "repush"), the channels whose commands have
// waited RepushWaiting and that were not pushed in the last RepushEvery
// (APNs delivery is best effort; a device may have missed the first push).
type Repush struct {
	Channels interface {
		WaitingChannels(ctx context.Context, waitingSince, pushedBefore time.Time, limit int) ([]store.Channel, error)
	}
	Pusher *Pusher
	Log    *slog.Logger
}

// Job is the job for jobs.Runner.Run.
func (r *Repush) Job() jobs.Job {
	return jobs.Job{Lease: "repush", LeaseTTL: 50 * time.Second, First: time.Minute, Interval: time.Minute, Run: r.Pass}
}

// Pass re-pushes the waiting channels once.
func (r *Repush) Pass(ctx context.Context) {
	now := time.Now()
	chs, err := r.Channels.WaitingChannels(ctx, now.Add(-RepushWaiting), now.Add(-RepushEvery), repushBatch)
	if err != nil {
		if ctx.Err() == nil {
			r.Log.Warn("re-push: cannot list waiting channels", "err", err)
		}
		return
	}
	if len(chs) > 0 {
		r.Log.Info("re-pushing devices with waiting commands", "channels", len(chs))
		r.Pusher.PushNow(ctx, chs)
	}
}

// CertWatch is the periodic push-certificate job: twice a day every
// instance reloads the certificate (so the expiry metric follows another
// instance's import) and one instance of a cluster (lease
// "push-cert-warnings") logs its problems (expiry from 30 days ahead).
type CertWatch struct {
	Certs *pushcert.Stored
	Jobs  *jobs.Runner
	Log   *slog.Logger
}

// Job is the job for jobs.Runner.Run.
func (w *CertWatch) Job() jobs.Job {
	return jobs.Job{First: 12 * time.Hour, Interval: 12 * time.Hour, Run: w.Pass}
}

// Pass reloads the certificate and, holding the lease, warns.
func (w *CertWatch) Pass(ctx context.Context) {
	c, err := w.Certs.Load(ctx)
	if err != nil {
		w.Certs.Changed(nil)
	} else {
		w.Certs.Changed(c)
	}
	// Every instance keeps its metric current; one warns per interval.
	if !w.Jobs.Leased(ctx, "push-cert-warnings", 11*time.Hour) {
		return
	}
	if err != nil {
		w.Log.Warn("no usable APNs push certificate", "err", err)
		return
	}
	for _, p := range c.Problems(time.Now()) {
		w.Log.Warn("push certificate: " + p)
	}
}
