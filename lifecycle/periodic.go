package lifecycle

import (
	"context"
	"time"

	"github.com/pomona-mdm/pomona/jobs"
	"github.com/pomona-mdm/pomona/mdmservice"
)

// RetireEvery is how often one instance of a cluster runs the retirement
// policy (when it is on).
const RetireEvery = time.Hour

// Periodic is the retirement policy's job for jobs.Runner.Run: a pass
// every hour on one instance of a cluster (lease "silent-retirement"),
// the first 5 minutes after start. With retirement off a pass does
// nothing (Run makes no query).
func (s *Silence) Periodic() jobs.Job {
	return jobs.Job{Lease: "silent-retirement", LeaseTTL: RetireEvery - 5*time.Minute, First: 5 * time.Minute, Interval: RetireEvery,
		Run: func(ctx context.Context) {
			if _, err := s.RunLogged(ctx); err != nil && ctx.Err() == nil {
				s.Log.Warn("silent-device retirement failed", "err", err)
			}
		}}
}

// RunLogged is Run with a log line when the pass retired devices (the
// periodic job, and tests with a moved clock).
func (s *Silence) RunLogged(ctx context.Context) (int, error) {
	n, err := s.Run(ctx)
	if n > 0 {
		s.Log.Info("silent devices retired", "count", n, "retire_after", s.RetireAfter.String())
	}
	return n, err
}

// DeviceEvent takes the MDM channel's events: after an Authenticate the
// enrollment's likely predecessor is recorded (Enrolled). Failures are
// logged; the device's request has been answered already.
func (r *Reenrollment) DeviceEvent(ctx context.Context, e mdmservice.Event) {
	if e.Kind != "authenticate" || e.Enrollment == nil {
		return
	}
	if _, err := r.Enrolled(ctx, e.Enrollment.ID); err != nil && ctx.Err() == nil {
		r.Log.Warn("re-enrollment check failed", "device", e.Enrollment.ID, "err", err)
	}
}
