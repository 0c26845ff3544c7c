package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/store"
)

// Endings (issue 13, docs/lifecycle.md): deleting a user, or a tenant with
// its users, first queues RemoveProfile for every enrolled device of
// theirs and pushes; the store then deletes the rows and keeps a
// tombstone per identity certificate, so a device that was offline is
// answered com.apple.unrecognized.device on its next request and removes
// its profile itself.
type Endings struct {
	Store interface {
		Enrollments(ctx context.Context, f store.EnrollmentFilter) ([]store.Enrollment, error)
	}
	Commands *Commands // nil: no RemoveProfile is sent
	Log      *slog.Logger
	// Events, when set, hears enrollment.ended for every device a
	// deletion or the disable policy ended (lifecycle.PublishEnded).
	Events lifecycle.Publisher
}

// Enrolled lists every enrolled device matching f (all pages of 500).
func (e *Endings) Enrolled(ctx context.Context, f store.EnrollmentFilter) ([]store.Enrollment, error) {
	f.Status, f.Limit = store.EnrollmentEnrolled, 500
	var out []store.Enrollment
	for {
		page, err := e.Store.Enrollments(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < f.Limit {
			return out, nil
		}
		f.Before = page[len(page)-1].ID
	}
}

// UnenrollAll queues RemoveProfile for each device and pushes it, with
// immediately ending the enrollment too. A device whose command could not
// be queued is logged and still ends by its tombstone (or stays for the
// caller to retry), so one failure does not block the others; it returns
// how many were handled.
func (e *Endings) UnenrollAll(ctx context.Context, devices []store.Enrollment, by string) int {
	return e.unenroll(ctx, devices, false, by)
}

func (e *Endings) unenroll(ctx context.Context, devices []store.Enrollment, immediately bool, by string) int {
	if e.Commands == nil {
		return 0
	}
	n := 0
	for i := range devices {
		if _, err := e.Commands.Unenroll(ctx, &devices[i], immediately, by); err != nil {
			if e.Log != nil {
				e.Log.Warn("RemoveProfile not queued", "device", devices[i].ID, "immediately", immediately, "err", err)
			}
			continue
		}
		n++
		if immediately {
			// Ended now (the disable policy); deletions announce theirs
			// once the rows are gone (Ended).
			lifecycle.PublishEnded(ctx, e.Events, &devices[i], lifecycle.EndUserDisabled, by, e.now())
		}
	}
	return n
}

// Ended sends enrollment.ended for each device a deletion ended, with
// reason lifecycle.EndUserDeleted or EndTenantDeleted.
func (e *Endings) Ended(ctx context.Context, devices []store.Enrollment, reason, by string) {
	at := e.now()
	for i := range devices {
		lifecycle.PublishEnded(ctx, e.Events, &devices[i], reason, by, at)
	}
}

// UnenrollUser is the --unenroll-on-disable policy (a job, called after a
// user was disabled): every enrolled device of the user is sent
// RemoveProfile and its enrollment ended at once, so its next request is
// answered com.apple.unrecognized.device even though the disabled user's
// token is refused. It returns how many devices were unenrolled.
func (e *Endings) UnenrollUser(ctx context.Context, userID, by string) (int, error) {
	devices, err := e.Enrolled(ctx, store.EnrollmentFilter{UserID: userID})
	if err != nil {
		return 0, err
	}
	return e.unenroll(ctx, devices, true, by), nil
}

// now is the device-lifecycle clock (the command queue's), so tombstones
// age on the same clock as the purge that removes them.
func (e *Endings) now() time.Time {
	if e.Commands != nil {
		return clock(e.Commands.Now)
	}
	return clock(nil)
}
