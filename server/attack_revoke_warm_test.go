package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/devicesim"
)

// TestAttackEndingsWithWarmSenders: a device polls (so that whatever the
// server remembers of its sender is warm), then its access is ended
// another way each time through the API; its very next poll, and a
// command result it sends, are refused. Both channels where the device
// has them. A guard for any cache of sender reads (identity certificate,
// enrollment, user, bearer token, channel).
func TestAttackEndingsWithWarmSenders(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name        string
		user, pw    string
		end         func(t *testing.T, w *world, d *devicesim.Device)
		wantRefused bool
	}{
		{"checked out", "alice@example.com", "alice-password", func(t *testing.T, w *world, d *devicesim.Device) {
			if err := d.CheckOut(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"user disabled", "alice@example.com", "alice-password", func(t *testing.T, w *world, d *devicesim.Device) {
			mustStatus(t, do(t, w.e, "PATCH", "/api/v1/users/alice@example.com", map[string]any{"enabled": false}, w.e.APIKey), 200)
		}, true},
		{"tokens cut off", "alice@example.com", "alice-password", func(t *testing.T, w *world, d *devicesim.Device) {
			mustStatus(t, do(t, w.e, "POST", "/api/v1/users/alice@example.com/reauthenticate", nil, w.e.APIKey), 200)
		}, true},
		{"user deleted", "alice@example.com", "alice-password", func(t *testing.T, w *world, d *devicesim.Device) {
			mustStatus(t, do(t, w.e, "DELETE", "/api/v1/users/alice@example.com", nil, w.e.APIKey), 204)
		}, true},
		{"tenant deleted", "alice@example.com", "alice-password", func(t *testing.T, w *world, d *devicesim.Device) {
			r := do(t, w.e, "DELETE", "/api/v1/tenants/"+w.tenant+"?cascade=true", nil, w.e.APIKey)
			if r.status != 204 && r.status != 200 {
				t.Fatalf("tenant delete: %d %s", r.status, r.body)
			}
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, true)
			mustStatus(t, do(t, w.e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, w.e.APIKey), 200)
			d := enrolledDevice(t, w, "iPhone", c.user, c.pw)
			for i := 0; i < 3; i++ {
				if _, err := d.Poll(ctx, nil, false); err != nil {
					t.Fatalf("poll %d before: %v", i, err)
				}
			}
			c.end(t, w, d)
			// A 4xx, or the 401 that asks the person to sign in again.
			refused := func(err error) bool {
				return err != nil && (strings.Contains(err.Error(), "answered 4") || strings.Contains(err.Error(), "sign in again"))
			}
			if _, err := d.Poll(ctx, nil, false); !refused(err) {
				t.Fatalf("Idle poll after %s: %v, want it refused", c.name, err)
			}
			if _, err := d.Poll(ctx, map[string]any{"Status": "Acknowledged", "CommandUUID": "6E1F2C3A-0B7D-4C1E-9E55-1A2B3C4D5E6F"}, false); !refused(err) {
				t.Fatalf("result after %s: %v, want it refused", c.name, err)
			}
		})
	}
}
