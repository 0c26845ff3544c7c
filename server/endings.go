package server

import (
	"context"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// DefaultTombstoneRetention is how long tombstones are kept by default: a
// device offline for longer is answered a bare 403 instead of
// com.apple.unrecognized.device (its identity certificate is no longer
// known at all).
const DefaultTombstoneRetention = 90 * 24 * time.Hour

// tombstonePurgeEvery is how often the purge runs (one instance per
// interval in a cluster).
const tombstonePurgeEvery = 6 * time.Hour

func (s *Server) purgeTombstones(ctx context.Context) {
	s.every(ctx, 10*time.Minute, tombstonePurgeEvery, func(ctx context.Context) {
		if !s.leased(ctx, "tombstone-purge", tombstonePurgeEvery-5*time.Minute) {
			return
		}
		if _, err := s.PurgeTombstones(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("tombstone purge failed", "err", err)
		}
	})
}

// PurgeTombstones deletes the tombstones older than the retention
// (Config.TombstoneRetention, default DefaultTombstoneRetention) by the
// device-lifecycle clock and returns how many: the periodic runner, and
// tests with a moved clock.
func (s *Server) PurgeTombstones(ctx context.Context) (int64, error) {
	keep := s.cfg.TombstoneRetention
	if keep <= 0 {
		keep = DefaultTombstoneRetention
	}
	n, err := s.Store.PurgeTombstones(ctx, s.Enroll.Now().Add(-keep))
	if n > 0 {
		s.log.Info("tombstones purged", "count", n, "older_than", keep.String())
	}
	return n, err
}

// unenrollDisabled is the --unenroll-on-disable policy: every enrolled
// device of a user just disabled is sent RemoveProfile and its enrollment
// ended at once (app.Endings.UnenrollUser), so its next request is
// answered com.apple.unrecognized.device even though the disabled user's
// token is refused. Failures are logged; the user stays disabled.
func (s *Server) unenrollDisabled(ctx context.Context, u *store.User) {
	n, err := s.App.Endings.UnenrollUser(ctx, u.ID, "policy: user disabled")
	if err != nil {
		s.log.Error("unenroll on disable: listing the user's devices failed", "user", u.ID, "err", err)
		return
	}
	s.log.Info("user disabled: devices unenrolled by policy", "user", u.ID, "devices", n)
}
