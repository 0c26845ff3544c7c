// Package endings carries out what happens to devices when what they
// belong to ends (docs/lifecycle.md, "Endings"): the tombstones that keep
// answering a deleted user's or tenant's devices
// com.apple.unrecognized.device are purged after their retention, and the
// --unenroll-on-disable policy unenrolls a disabled user's devices.
package endings

import (
	"context"
	"log/slog"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/jobs"
	"github.com/pomona-mdm/pomona/store"
)

// DefaultTombstoneRetention is how long tombstones are kept by default: a
// device offline for longer is answered a bare 403 instead of
// com.apple.unrecognized.device (its identity certificate is no longer
// known at all).
const DefaultTombstoneRetention = 90 * 24 * time.Hour

// purgeEvery is how often the purge runs (one instance per interval in a
// cluster).
const purgeEvery = 6 * time.Hour

// Tombstones purges the tombstones older than Retention (0: the default)
// by the device-lifecycle clock Now.
type Tombstones struct {
	Store interface {
		PurgeTombstones(ctx context.Context, before time.Time) (int64, error)
	}
	Retention time.Duration
	Now       func() time.Time
	Log       *slog.Logger
}

// Periodic is the job for jobs.Runner.Run: a purge every 6 hours on one
// instance of a cluster (lease "tombstone-purge"), the first 10 minutes
// after start.
func (t *Tombstones) Periodic() jobs.Job {
	return jobs.Job{Lease: "tombstone-purge", LeaseTTL: purgeEvery - 5*time.Minute, First: 10 * time.Minute, Interval: purgeEvery,
		Run: func(ctx context.Context) {
			if _, err := t.Purge(ctx); err != nil && ctx.Err() == nil {
				t.Log.Warn("tombstone purge failed", "err", err)
			}
		}}
}

// Purge deletes the tombstones older than the retention and returns how
// many (the periodic job, and tests with a moved clock).
func (t *Tombstones) Purge(ctx context.Context) (int64, error) {
	keep := t.Retention
	if keep <= 0 {
		keep = DefaultTombstoneRetention
	}
	n, err := t.Store.PurgeTombstones(ctx, t.Now().Add(-keep))
	if n > 0 {
		t.Log.Info("tombstones purged", "count", n, "older_than", keep.String())
	}
	return n, err
}

// UnenrollOnDisable is the --unenroll-on-disable policy.
type UnenrollOnDisable struct {
	Endings *app.Endings
	Log     *slog.Logger
}

// Disabled (directory.Service.Disabled) sends RemoveProfile to every
// enrolled device of u, a user just disabled, and ends its enrollment at
// once (app.Endings.UnenrollUser), so the device's next request is
// answered com.apple.unrecognized.device even though the disabled user's
// token is refused. Failures are logged; the user stays disabled.
func (p *UnenrollOnDisable) Disabled(ctx context.Context, u *store.User) {
	n, err := p.Endings.UnenrollUser(ctx, u.ID, "policy: user disabled")
	if err != nil {
		p.Log.Error("unenroll on disable: listing the user's devices failed", "user", u.ID, "err", err)
		return
	}
	p.Log.Info("user disabled: devices unenrolled by policy", "user", u.ID, "devices", n)
}
