package server

import (
	"context"
	"time"

	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/store"
)

// retireEvery is how often one instance of a cluster runs the
// silent-device retirement (when --retire-silent-after is set).
const retireEvery = time.Hour

// setupLifecycle builds the enrollment lifecycle: re-enrollment links,
// silence and its retirement policy, and the enrollment.ended events of
// the application layer's endings.
func (s *Server) setupLifecycle(clock func() time.Time) error {
	s.App.Endings.Events = s.events
	s.Reenroll = &lifecycle.Reenrollment{Store: s.Store, Window: s.cfg.ReenrollWindow, Events: s.events, Log: s.log}
	s.Silence = &lifecycle.Silence{Store: s.Store, SilentAfter: s.cfg.SilentAfter, RetireAfter: s.cfg.RetireSilentAfter, Events: s.events,
		Now: clock, Log: s.log, End: func(ctx context.Context, e *store.Enrollment, by string) error {
			_, err := s.App.Commands.Unenroll(ctx, e, true, by)
			return err
		}}
	s.App.Devices.Silence = s.Silence
	return s.Silence.Check()
}

// reenrolled records a newly enrolled device's likely predecessor.
func (s *Server) reenrolled(ctx context.Context, e *store.Enrollment) {
	if _, err := s.Reenroll.Enrolled(ctx, e.ID); err != nil && ctx.Err() == nil {
		s.log.Warn("re-enrollment check failed", "device", e.ID, "err", err)
	}
}

// retireSilent runs the retirement policy once per interval across the
// cluster (lease "silent-retirement"); nothing runs while it is off.
func (s *Server) retireSilent(ctx context.Context) {
	if s.cfg.RetireSilentAfter <= 0 {
		return
	}
	s.every(ctx, 5*time.Minute, retireEvery, func(ctx context.Context) {
		if !s.leased(ctx, "silent-retirement", retireEvery-5*time.Minute) {
			return
		}
		if _, err := s.RetireSilent(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("silent-device retirement failed", "err", err)
		}
	})
}

// RetireSilent runs one pass of the retirement policy now (the periodic
// runner, and tests with a moved clock).
func (s *Server) RetireSilent(ctx context.Context) (int, error) {
	n, err := s.Silence.Run(ctx)
	if n > 0 {
		s.log.Info("silent devices retired", "count", n, "retire_after", s.cfg.RetireSilentAfter.String())
	}
	return n, err
}
