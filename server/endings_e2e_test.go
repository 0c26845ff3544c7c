package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/server"
)

// Endings (issue 13): deleting a user, or their tenant with cascade, wakes
// their devices with RemoveProfile queued and leaves tombstones, so every
// later request of those devices is answered com.apple.unrecognized.device
// (the device removes its profile) rather than a bare 403. dry_run counts
// the devices and changes nothing.
func TestDeleteUserUnenrollsDevices(t *testing.T) {
	stub, opt := withAPNs(t)
	clk := &movableClock{}
	w := newWorldWith(t, opt, withClock(clk), func(c *server.Config) { c.TombstoneRetention = 48 * time.Hour })
	e, ctx := w.e, context.Background()
	alice := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	bob := enrolledDevice(t, w, "iPad", "bob@example.com", "bob-password")
	olga := enrolledDevice(t, w, "iPhone", "olga@other.example", "olga-password")

	count := func(path string, want int) {
		t.Helper()
		a := do(t, e, "DELETE", path, nil, e.APIKey)
		mustStatus(t, a, 200)
		if got := a.json(t)["devices_to_unenroll"]; got != float64(want) {
			t.Fatalf("%s: devices_to_unenroll %v, want %d (%s)", path, got, want, a.body)
		}
	}
	count("/api/v1/users/alice@example.com?dry_run=true", 1)
	count("/api/v1/tenants/"+w.tenant+"?cascade=true&dry_run=true", 2)
	// Nothing changed: both still poll normally.
	for _, d := range []*devicesim.Device{alice, bob} {
		if _, err := d.Poll(ctx, nil, false); err != nil {
			t.Fatalf("after a dry run: %v", err)
		}
	}

	pushes := stub.Listen(alice.MDM.PushToken)
	mustStatus(t, do(t, e, "DELETE", "/api/v1/users/alice@example.com", nil, e.APIKey), 204)
	select {
	case <-pushes:
	case <-time.After(10 * time.Second):
		t.Fatal("the deleted user's device was not woken")
	}
	unrecognized := func(d *devicesim.Device, who string) {
		t.Helper()
		if _, err := d.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "com.apple.unrecognized.device") {
			t.Fatalf("%s's poll after the deletion: %v", who, err)
		}
		if err := d.TokenUpdate(ctx, false); err == nil || !strings.Contains(err.Error(), "com.apple.unrecognized.device") {
			t.Fatalf("%s's check-in after the deletion: %v", who, err)
		}
	}
	unrecognized(alice, "alice")
	if _, err := bob.Poll(ctx, nil, false); err != nil {
		t.Fatalf("another user's device after the deletion: %v", err)
	}

	mustStatus(t, do(t, e, "DELETE", "/api/v1/tenants/"+w.tenant+"?cascade=true", nil, e.APIKey), 204)
	unrecognized(bob, "bob")
	if _, err := olga.Poll(ctx, nil, false); err != nil {
		t.Fatalf("another tenant's device after the deletion: %v", err)
	}

	// Tombstones go after --tombstone-retention, on the lifecycle clock.
	start := clk.now()
	for _, c := range []struct {
		after time.Duration
		want  int64
	}{{47 * time.Hour, 0}, {49 * time.Hour, 2}, {50 * time.Hour, 0}} {
		clk.moveTo(start.Add(c.after))
		if n, err := e.Server.Tombstones.Purge(ctx); err != nil || n != c.want {
			t.Fatalf("purge after %v: %d, %v; want %d", c.after, n, err, c.want)
		}
	}
}

// With --unenroll-on-disable, disabling a user ends their devices'
// enrollments: the next request is answered com.apple.unrecognized.device.
// Without it (the default) the device stays enrolled.
func TestDisableUnenrollsByPolicy(t *testing.T) {
	for _, policy := range []bool{true, false} {
		t.Run(map[bool]string{true: "policy", false: "default"}[policy], func(t *testing.T) {
			w := newWorldWith(t, func(c *server.Config) { c.UnenrollOnDisable = policy })
			e, ctx := w.e, context.Background()
			d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
			mustStatus(t, do(t, e, "PATCH", "/api/v1/users/alice@example.com", map[string]any{"enabled": false}, e.APIKey), 200)
			_, err := d.Poll(ctx, nil, false)
			gone := err != nil && strings.Contains(err.Error(), "com.apple.unrecognized.device")
			if gone != policy {
				t.Fatalf("poll after disabling (policy %v): %v", policy, err)
			}
			st := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID, nil, e.APIKey).json(t)["status"]
			if want := map[bool]string{true: "unenrolled", false: "enrolled"}[policy]; st != want {
				t.Fatalf("device status %v, want %s", st, want)
			}
		})
	}
}
