package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/server"
)

// Re-enrollment and silence (issue 13, item 3), on the movable clock: the
// same user enrolls a new iPhone of the same model two days after the
// first went quiet — the new device shows its predecessor (and the old
// one its successor); another model, another user, or a device still
// heard of after the new one enrolled is not linked. Thirty-one days on
// the old device is flagged silent (device JSON, ?silent=true); after
// --retire-silent-after the policy retires it: RemoveProfile queued, its
// next request answered com.apple.unrecognized.device, enrollment.ended
// sent. The new device, which kept polling, stays managed.
func TestReenrollmentAndSilence(t *testing.T) {
	// The world starts 100 days back (the simulator signs with the host
	// clock, so the timeline ends before the real present).
	clk := &movableClock{}
	start := time.Now().Add(-100 * 24 * time.Hour)
	clk.moveTo(start)
	w := newWorldWith(t, withClock(clk), func(c *server.Config) { c.RetireSilentAfter = 60 * 24 * time.Hour })
	e, ctx := w.e, context.Background()
	// Signing in again: no second factor to repeat in this test.
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	hooks := subscribe(t, w, "device.reenrolled", "enrollment.ended")
	dev := func(id string) map[string]any {
		t.Helper()
		a := do(t, e, "GET", "/api/v1/devices/"+id, nil, e.APIKey)
		mustStatus(t, a, 200)
		return a.json(t)
	}
	silentIDs := func() map[string]bool {
		t.Helper()
		a := do(t, e, "GET", "/api/v1/devices?silent=true", nil, e.APIKey)
		mustStatus(t, a, 200)
		out := map[string]bool{}
		for _, d := range a.json(t)["devices"].([]any) {
			m := d.(map[string]any)
			if m["silent"] != true {
				t.Fatalf("?silent=true listed a device not flagged silent: %v", m)
			}
			out[m["enrollment_id"].(string)] = true
		}
		return out
	}

	old := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	bobs := enrolledDevice(t, w, "iPhone", "bob@example.com", "bob-password")
	// Two days later Alice enrolls again (erased phone): same model.
	clk.moveTo(start.Add(2 * 24 * time.Hour))
	ipad := enrolledDevice(t, w, "iPad", "alice@example.com", "alice-password")
	clk.moveTo(start.Add(2*24*time.Hour + time.Minute))
	renewed := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")

	n := dev(renewed.MDM.EnrollmentID)
	o := dev(old.MDM.EnrollmentID)
	if n["predecessor"] != o["id"] || o["successor"] != n["id"] {
		t.Fatalf("re-enrolled device: predecessor %v, old device's successor %v; want %v and %v", n["predecessor"], o["successor"], o["id"], n["id"])
	}
	if p := dev(ipad.MDM.EnrollmentID)["predecessor"]; p != nil {
		t.Fatalf("an iPad was linked to an iPhone: %v", p)
	}
	if p := dev(bobs.MDM.EnrollmentID)["successor"]; p != nil {
		t.Fatalf("another user's device got a successor: %v", p)
	}
	waitEvents(t, hooks, "device.reenrolled")
	if len(silentIDs()) != 0 || o["silent"] != false {
		t.Fatalf("silent devices right after enrolling: %v", silentIDs())
	}

	// A month on: the devices that did not poll are silent; the new
	// iPhone polls every few days and is not.
	for day := 5; day <= 33; day += 7 {
		clk.moveTo(start.Add(time.Duration(day) * 24 * time.Hour))
		if _, err := renewed.Poll(ctx, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	silent := silentIDs()
	if !silent[old.MDM.EnrollmentID] || !silent[bobs.MDM.EnrollmentID] || silent[renewed.MDM.EnrollmentID] || len(silent) != 3 {
		t.Fatalf("silent after 33 days: %v (want the old iPhone, Bob's iPhone and the iPad)", silent)
	}
	if dev(old.MDM.EnrollmentID)["silent"] != true || dev(renewed.MDM.EnrollmentID)["silent"] != false {
		t.Fatal("silent flag on the single device wrong")
	}
	// Bob's device comes back: no longer silent.
	if _, err := bobs.Poll(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
	if silentIDs()[bobs.MDM.EnrollmentID] {
		t.Fatal("a device seen again is still silent")
	}

	// Retirement: not before 60 days of silence, then once.
	if n, err := e.Server.RetireSilent(ctx); err != nil || n != 0 {
		t.Fatalf("retired after 33 days: %d %v", n, err)
	}
	clk.moveTo(start.Add(63 * 24 * time.Hour))
	if _, err := renewed.Poll(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
	if n, err := e.Server.RetireSilent(ctx); err != nil || n != 2 { // the old iPhone and the iPad (last seen on days 0 and 2)
		t.Fatalf("retired after 63 days: %d %v", n, err)
	}
	if n, err := e.Server.RetireSilent(ctx); err != nil || n != 0 {
		t.Fatalf("second pass retired %d more, %v", n, err)
	}
	o = dev(old.MDM.EnrollmentID)
	if o["status"] != "unenrolled" || o["silent"] != false {
		t.Fatalf("retired device: %v", o)
	}
	cmds := do(t, e, "GET", "/api/v1/devices/"+old.MDM.EnrollmentID+"/commands", nil, e.APIKey)
	if !strings.Contains(string(cmds.body), "RemoveProfile") {
		t.Fatalf("no RemoveProfile queued for the retired device: %s", cmds.body)
	}
	if _, err := old.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "com.apple.unrecognized.device") {
		t.Fatalf("the retired device's poll: %v", err)
	}
	if _, err := renewed.Poll(ctx, nil, false); err != nil {
		t.Fatalf("the new device after its predecessor retired: %v", err)
	}
	if _, err := bobs.Poll(ctx, nil, false); err != nil {
		t.Fatalf("a device seen within the policy: %v", err)
	}
	waitEvents(t, hooks, "device.reenrolled enrollment.ended enrollment.ended")
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	for _, ev := range hooks.events {
		if d := ev.Data.(map[string]any); ev.Type == "enrollment.ended" && d["reason"] != "retired_silent" {
			t.Fatalf("enrollment.ended %v", d)
		}
	}
}
