package api

import (
	"context"
	"net/http"

	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/store"
)

// Re-enrollment and silence in the device API (docs/lifecycle.md).

// silentFilter applies ?silent=true (enrolled devices not seen for serve
// --silent-after) or ?silent=false (no filter) to a device list.
func (a *API) silentFilter(r *http.Request, f store.EnrollmentFilter) (store.EnrollmentFilter, error) {
	silent, err := boolParam(r, "silent")
	if err != nil || !silent || a.Silence == nil {
		return f, err
	}
	if f.Status != "" && f.Status != store.EnrollmentEnrolled {
		return f, httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "silent=true selects enrolled devices: leave out status or use status=enrolled")
	}
	return a.Silence.Filter(f, a.now()), nil
}

// lifecycleFields adds the silent flag and the recorded predecessor to d
// (a list shows the record; a single device is checked by links).
func (a *API) lifecycleFields(d Device, e *store.Enrollment) Device {
	d.Predecessor = e.PredecessorID
	if a.Silence != nil {
		d.Silent = a.Silence.Silent(e, a.now())
	}
	return d
}

// links sets a single device's predecessor and successor, each dropped
// when later activity showed two devices (lifecycle.Links).
func (a *API) links(ctx context.Context, d *Device, e *store.Enrollment) error {
	pred, succ, err := lifecycle.Links(ctx, a.Store, e)
	if err != nil {
		return err
	}
	d.Predecessor, d.Successor = "", ""
	if pred != nil {
		d.Predecessor = pred.ID
	}
	if succ != nil {
		d.Successor = succ.ID
	}
	return nil
}
