package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// DefaultSilentAfter: an enrolled device not seen for this long is
// flagged silent.
const DefaultSilentAfter = 30 * 24 * time.Hour

// DefaultRetireBatch bounds the devices one pass retires (the rest wait
// for the next pass), so a backlog turned on at once is spread out.
const DefaultRetireBatch = 500

// Silence flags enrolled devices that have not been seen for SilentAfter
// and, when RetireAfter is set (a policy, off by default), ends those not
// seen for RetireAfter: RemoveProfile queued and pushed, the enrollment
// ended at once (its identity certificates revoked, so a later request is
// answered com.apple.unrecognized.device and the device removes its
// profile), an enrollment.ended event with reason retired_silent. The
// enrollment row stays, unenrolled, with its history.
//
// The flag is not stored: a device is silent when its last-seen time is
// before the cut-off, which the API, the console and the dashboard ask the
// store through the (status, last_seen_at) index.
type Silence struct {
	Store interface {
		Enrollments(ctx context.Context, f store.EnrollmentFilter) ([]store.Enrollment, error)
	}
	// SilentAfter: zero means DefaultSilentAfter.
	SilentAfter time.Duration
	// RetireAfter: zero turns retirement off. It must not be shorter
	// than SilentAfter (Check).
	RetireAfter time.Duration
	// End sends RemoveProfile and ends the enrollment at once
	// (mdmservice.Commands.Unenroll with immediately).
	End    func(ctx context.Context, e *store.Enrollment, by string) error
	Events Publisher
	Batch  int // zero: DefaultRetireBatch
	Now    func() time.Time
	Log    *slog.Logger
}

// Check reports settings that contradict each other.
func (s *Silence) Check() error {
	if s.RetireAfter < 0 || s.SilentAfter < 0 {
		return fmt.Errorf("--silent-after and --retire-silent-after must not be negative")
	}
	if s.RetireAfter > 0 && s.End == nil {
		return fmt.Errorf("lifecycle: retiring silent devices needs Silence.End")
	}
	if s.RetireAfter > 0 && s.RetireAfter < s.silentAfter() {
		return fmt.Errorf("--retire-silent-after %s is shorter than --silent-after %s: only silent devices are retired", s.RetireAfter, s.silentAfter())
	}
	return nil
}

func (s *Silence) silentAfter() time.Duration {
	if s.SilentAfter > 0 {
		return s.SilentAfter
	}
	return DefaultSilentAfter
}

// Threshold is the silence threshold in use (SilentAfter, or the default).
func (s *Silence) Threshold() time.Duration { return s.silentAfter() }

// Cutoff is the last-seen time before which an enrolled device is silent
// at now.
func (s *Silence) Cutoff(now time.Time) time.Time { return now.Add(-s.silentAfter()) }

// Silent reports whether e is flagged silent at now: enrolled and last
// seen before the cut-off.
func (s *Silence) Silent(e *store.Enrollment, now time.Time) bool {
	return e.Status == store.EnrollmentEnrolled && e.LastSeenAt.Before(s.Cutoff(now))
}

// Filter narrows f to the devices silent at now.
func (s *Silence) Filter(f store.EnrollmentFilter, now time.Time) store.EnrollmentFilter {
	f.Status, f.SeenBefore = store.EnrollmentEnrolled, s.Cutoff(now)
	return f
}

// Run is one pass of the retirement policy at s.Now(); it returns how
// many devices it retired. With retirement off it does nothing; otherwise
// it costs one indexed query (enrolled, last seen before the cut-off)
// returning only the devices to retire, whatever the size of the fleet.
func (s *Silence) Run(ctx context.Context) (int, error) {
	if s.RetireAfter <= 0 {
		return 0, nil
	}
	now := s.Now().UTC()
	batch := s.Batch
	if batch <= 0 {
		batch = DefaultRetireBatch
	}
	due, err := s.Store.Enrollments(ctx, store.EnrollmentFilter{Status: store.EnrollmentEnrolled, SeenBefore: now.Add(-s.RetireAfter), Limit: batch})
	if err != nil {
		return 0, err
	}
	n := 0
	by := "policy: silent for " + Days(s.RetireAfter)
	for i := range due {
		e := &due[i]
		if err := s.End(ctx, e, by); err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			s.Log.Error("retiring a silent device failed; tried again at the next pass", "device", e.ID, "err", err)
			continue
		}
		n++
		s.Log.Info("silent device retired: RemoveProfile queued and enrollment ended", "device", e.ID, "enrollment_id", e.AppleEnrollmentID,
			"user", e.UserID, "last_seen", e.LastSeenAt, "retire_after", s.RetireAfter.String())
		PublishEnded(ctx, s.Events, e, EndRetired, by, now)
	}
	return n, nil
}

// Days writes d in days when it is a whole number of them ("30 days"),
// else as a Go duration ("36h0m0s").
func Days(d time.Duration) string {
	switch {
	case d == 24*time.Hour:
		return "1 day"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}
