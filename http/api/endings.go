package api

import (
	"net/http"
	"time"

	"github.com/pomona-mdm/pomona/http/httpx"
)

// Endings (issue 13, docs/lifecycle.md): deleting a user, or a tenant with
// its users, goes through lifecycle.Endings, which first queues
// RemoveProfile for every enrolled device of theirs and pushes; the store
// then deletes the rows and keeps a tombstone per identity certificate,
// so a device that was offline is answered com.apple.unrecognized.device
// on its next request and removes its profile itself.

// dryRun answers a ?dry_run=true deletion: {"devices_to_unenroll": N}.
func dryRun(w http.ResponseWriter, n int) {
	httpx.WriteJSON(w, http.StatusOK, map[string]int{"devices_to_unenroll": n})
}

// now is the device-lifecycle clock (the command queue's), so the silent
// flag is computed on the same clock as the devices' last-seen times.
func (a *API) now() time.Time {
	if a.Commands != nil && a.Commands.Now != nil {
		return a.Commands.Now().UTC()
	}
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}
