package api

import (
	"context"
	"net/http"
	"time"

	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/store"
)

// Endings (issue 13, docs/lifecycle.md): deleting a user, or a tenant with
// its users, first queues RemoveProfile for every enrolled device of
// theirs and pushes; the store then deletes the rows and keeps a
// tombstone per identity certificate, so a device that was offline is
// answered com.apple.unrecognized.device on its next request and removes
// its profile itself.

// enrolledDevices lists every enrolled device matching f (all pages).
func (a *API) enrolledDevices(ctx context.Context, f store.EnrollmentFilter) ([]store.Enrollment, error) {
	f.Status, f.Limit = store.EnrollmentEnrolled, 500
	var out []store.Enrollment
	for {
		page, err := a.Store.Enrollments(ctx, f)
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

// dryRun answers a ?dry_run=true deletion: {"devices_to_unenroll": N}.
func dryRun(w http.ResponseWriter, devices []store.Enrollment) {
	httpx.WriteJSON(w, http.StatusOK, map[string]int{"devices_to_unenroll": len(devices)})
}

// unenrollAll queues RemoveProfile for each device and pushes it. A
// device whose command could not be queued is logged and still ends by
// its tombstone, so one failure does not block the deletion.
func (a *API) unenrollAll(ctx context.Context, devices []store.Enrollment, by string) {
	if a.Commands == nil {
		return
	}
	for i := range devices {
		if _, err := a.Commands.Unenroll(ctx, &devices[i], false, by); err != nil {
			a.Log.Warn("RemoveProfile not queued before deletion; the device ends by its tombstone", "device", devices[i].ID, "err", err)
		}
	}
}

// now is the device-lifecycle clock (the command queue's), so tombstones
// age on the same clock as the purge that removes them.
func (a *API) now() time.Time {
	if a.Commands != nil && a.Commands.Now != nil {
		return a.Commands.Now().UTC()
	}
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}
