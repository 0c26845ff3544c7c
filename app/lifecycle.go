package app

import (
	"time"

	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/store"
)

// Silent devices (docs/lifecycle.md, "Silence and retirement"): enrolled
// and not seen for serve --silent-after, by the device-lifecycle clock.

// Silent reports whether e is silent now.
func (d *Devices) Silent(e *store.Enrollment) bool {
	return d.Silence != nil && d.Silence.Silent(e, d.Silence.Now())
}

// SilentCutoff is the last-seen time before which an enrolled device is
// silent now; zero without a Silence.
func (d *Devices) SilentCutoff() time.Time {
	if d.Silence == nil {
		return time.Time{}
	}
	return d.Silence.Cutoff(d.Silence.Now())
}

// SilentFor is the silence threshold in words ("30 days").
func (d *Devices) SilentFor() string {
	if d.Silence == nil {
		return lifecycle.Days(lifecycle.DefaultSilentAfter)
	}
	return lifecycle.Days(d.Silence.Threshold())
}

func (d *Devices) silentFilter(f store.EnrollmentFilter) store.EnrollmentFilter {
	if d.Silence == nil {
		f.Status, f.SeenBefore = store.EnrollmentEnrolled, time.Now().Add(-lifecycle.DefaultSilentAfter)
		return f
	}
	return d.Silence.Filter(f, d.Silence.Now())
}
