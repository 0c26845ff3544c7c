package server_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/server"
	"github.com/pomona-mdm/pomona/store"
)

// The enrollment lifecycle in the console: a re-enrolled device's page
// links to its predecessor and back; silent devices are counted on the
// dashboard and listed by the devices filter; deleting a user, or a
// tenant with its users, first shows how many devices will be unenrolled
// and asks to confirm (a count that changed meanwhile is shown again), and
// then unenrolls them: their next request is answered
// com.apple.unrecognized.device.
func TestConsoleLifecycle(t *testing.T) {
	clk := &consoleClock{}
	life := &movableClock{}
	start := time.Now().Add(-2 * time.Hour)
	life.moveTo(start)
	w := newWorldWith(t, withClock(life), func(c *server.Config) {
		c.ConsoleClock = clk.now
		c.SilentAfter = time.Hour
	})
	e, ctx := w.e, context.Background()
	st := e.Server.Store
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	old := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	renewed := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	bobs := enrolledDevice(t, w, "iPad", "bob@example.com", "bob-password")
	olgas := enrolledDevice(t, w, "iPhone", "olga@other.example", "olga-password")
	oldDev, _ := st.EnrollmentByAppleID(ctx, old.MDM.EnrollmentID)
	newDev, _ := st.EnrollmentByAppleID(ctx, renewed.MDM.EnrollmentID)
	alice, _ := st.UserByEmail(ctx, "alice@example.com")
	o := newConsoleUser(t, w, clk, "root@ops.example", store.RoleOwner)

	// Links both ways.
	if _, body := o.get("/console/devices/" + newDev.ID); !strings.Contains(body, `Re-enrollment of</dt><dd><a href="/console/devices/`+oldDev.ID+`"`) {
		t.Fatalf("the new device's page does not link its predecessor: %s", body)
	}
	if _, body := o.get("/console/devices/" + oldDev.ID); !strings.Contains(body, `Re-enrolled as</dt><dd><a href="/console/devices/`+newDev.ID+`"`) {
		t.Fatalf("the old device's page does not link its successor: %s", body)
	}

	// Silence: two hours on, all four are silent; one that polls is not.
	life.moveTo(start.Add(2 * time.Hour))
	if _, err := renewed.Poll(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, body := o.get("/console/"); !strings.Contains(body, `<a href="/console/devices?status=silent">3 silent devices</a>: enrolled, not seen for 1h0m0s`) {
		t.Fatalf("dashboard: no silent count: %s", body)
	}
	_, body := o.get("/console/devices?status=silent")
	for _, d := range []*store.Enrollment{oldDev, newDev} {
		if listed := strings.Contains(body, `href="/console/devices/`+d.ID+`"`); listed != (d == oldDev) {
			t.Fatalf("silent filter lists %s: %v", d.ID, listed)
		}
	}
	if !strings.Contains(body, `<span class="badge warn">silent</span>`) {
		t.Fatal("silent devices are not marked")
	}

	// An auditor cannot delete.
	if code, _ := newConsoleUser(t, w, clk, "audit@ops.example", store.RoleAuditor).get("/console/users/" + alice.ID + "/delete"); code != 403 {
		t.Fatalf("auditor on the deletion page: %d", code)
	}

	// Deleting Alice: the page says two devices; a stale count is refused.
	_, body = o.get("/console/users/" + alice.ID + "/delete")
	if !strings.Contains(body, "2 enrolled device(s) will be unenrolled") || !strings.Contains(body, `name="devices" value="2"`) {
		t.Fatalf("user deletion page: %s", body)
	}
	if code, body := o.post("/console/users/"+alice.ID+"/delete", url.Values{"devices": {"1"}}); code != 409 || !strings.Contains(body, "changed since the page was shown") {
		t.Fatalf("stale count: %d %s", code, body)
	}
	if _, err := st.User(ctx, alice.ID); err != nil {
		t.Fatal("deleted on a stale count")
	}
	if code, body := o.post("/console/users/"+alice.ID+"/delete", url.Values{"devices": {"2"}}); code != 200 || !strings.Contains(body, "2 device(s) unenrolled") {
		t.Fatalf("delete user: %d %s", code, body)
	}
	if _, err := renewed.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "com.apple.unrecognized.device") {
		t.Fatalf("the deleted user's device: %v", err)
	}

	// The tenant, with Bob and his iPad: the name must be typed.
	_, body = o.get("/console/tenants/" + w.tenant)
	if !strings.Contains(body, `href="/console/tenants/`+w.tenant+`/delete"`) {
		t.Fatal("the tenant page offers no deletion with its users")
	}
	_, body = o.get("/console/tenants/" + w.tenant + "/delete")
	if !strings.Contains(body, "<strong>1 user(s)</strong>") || !strings.Contains(body, "1 enrolled device(s) will be unenrolled") {
		t.Fatalf("tenant deletion page: %s", body)
	}
	if code, body := o.post("/console/tenants/"+w.tenant+"/delete-with-users", url.Values{"devices": {"1"}, "confirm": {"Example"}}); code != 400 || !strings.Contains(body, "Type the tenant") {
		t.Fatalf("wrong name: %d %s", code, body)
	}
	if code, body := o.post("/console/tenants/"+w.tenant+"/delete-with-users", url.Values{"devices": {"1"}, "confirm": {"Example Corp"}}); code != 200 || !strings.Contains(body, "1 device(s) unenrolled") {
		t.Fatalf("delete tenant: %d %s", code, body)
	}
	if _, err := st.Tenant(ctx, w.tenant); err == nil {
		t.Fatal("the tenant is still there")
	}
	if _, err := bobs.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "com.apple.unrecognized.device") {
		t.Fatalf("the deleted tenant's device: %v", err)
	}
	if _, err := olgas.Poll(ctx, nil, false); err != nil {
		t.Fatalf("another tenant's device: %v", err)
	}
}
