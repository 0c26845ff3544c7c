package server

import (
	"context"
	"time"

	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/store"
)

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

// RetireSilent runs one pass of the retirement policy now (tests with a
// moved clock; the server runs Silence.Periodic).
func (s *Server) RetireSilent(ctx context.Context) (int, error) { return s.Silence.RunLogged(ctx) }
