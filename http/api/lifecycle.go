package api

import (
	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/store"
)

// Re-enrollment and silence in the device API (docs/lifecycle.md).

// lifecycleFields adds the silent flag and the recorded predecessor to d
// (a list shows the record; a single device shows app.Detail's checked
// links instead).
func (a *API) lifecycleFields(d apitypes.Device, e *store.Enrollment) apitypes.Device {
	d.Predecessor, d.Silent = e.PredecessorID, a.App.Devices.Silent(e)
	return d
}

// deviceID is e's id, "" for nil.
func deviceID(e *store.Enrollment) string {
	if e == nil {
		return ""
	}
	return e.ID
}
