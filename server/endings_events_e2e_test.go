package server_test

import (
	"testing"

	"github.com/pomona-mdm/pomona/server"
)

// Every server-side ending sends enrollment.ended with its reason and
// who asked: deleting a user, a tenant with its users, and disabling a
// user under --unenroll-on-disable (retirement: TestReenrollmentAndSilence).
func TestEndingsSendEnrollmentEnded(t *testing.T) {
	w := newWorldWith(t, func(c *server.Config) { c.UnenrollOnDisable = true })
	e := w.e
	hooks := subscribe(t, w, "enrollment.ended")
	alice := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	bob := enrolledDevice(t, w, "iPad", "bob@example.com", "bob-password")
	olga := enrolledDevice(t, w, "iPhone", "olga@other.example", "olga-password")

	mustStatus(t, do(t, e, "DELETE", "/api/v1/users/alice@example.com", nil, e.APIKey), 204)
	mustStatus(t, do(t, e, "PATCH", "/api/v1/users/olga@other.example", map[string]any{"enabled": false}, e.APIKey), 200)
	mustStatus(t, do(t, e, "DELETE", "/api/v1/tenants/"+w.tenant+"?cascade=true", nil, e.APIKey), 204)
	waitEvents(t, hooks, "enrollment.ended enrollment.ended enrollment.ended")

	want := map[string]string{alice.MDM.EnrollmentID: "user_deleted", olga.MDM.EnrollmentID: "user_disabled", bob.MDM.EnrollmentID: "tenant_deleted"}
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	for _, ev := range hooks.events {
		d := ev.Data.(map[string]any)
		id, _ := d["enrollment_id"].(string)
		if want[id] == "" || d["reason"] != want[id] || d["device"] == "" || d["user_id"] == "" || d["ended_at"] == "" || d["by"] == "" {
			t.Errorf("enrollment.ended %v, want reason %q", d, want[id])
		}
		delete(want, id)
	}
	if len(want) != 0 {
		t.Errorf("no enrollment.ended for %v", want)
	}
}
