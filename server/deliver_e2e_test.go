package server_test

import (
	"encoding/base64"
	"testing"

	"github.com/pomona-mdm/pomona/devicesim"
)

// A profile with a per-user variable is queued as ONE shared template
// command for a batch of devices and rendered per device when each
// fetches it (docs/profiles.md, "Rendered at delivery"): two users'
// iPhones get the same CommandUUID, each with its OWN email in the
// profile, signed with Pomona's profile signer; the admin cannot re-queue
// the template as raw bytes.
func TestProfileRenderedAtDelivery(t *testing.T) {
	w := newWorld(t, true)
	e := w.e
	k := e.APIKey
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, k), 200)
	alice := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	bob := enrolledDevice(t, w, "iPhone", "bob@example.com", "bob-password")
	all := []*devicesim.Device{alice, bob}

	a := do(t, e, "POST", "/api/v1/groups", map[string]any{"tenant_id": w.tenant, "name": "Wi-Fi users"}, k)
	mustStatus(t, a, 201)
	gid := a.json(t)["id"].(string)
	mustStatus(t, do(t, e, "POST", "/api/v1/groups/"+gid+"/members", map[string]any{"users": []string{"alice@example.com", "bob@example.com"}}, k), 200)
	a = do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("v1")), "sign": true}, k)
	mustStatus(t, a, 201)
	pid := a.json(t)["id"].(string)
	// Both devices are marked by this one change: one reconciler batch.
	mustStatus(t, do(t, e, "POST", "/api/v1/profiles/"+pid+"/assignments", map[string]any{"group_id": gid}, k), 200)

	converge(t, all, "installed on both", func() bool {
		c := do(t, e, "GET", "/api/v1/profiles/"+pid+"/status", nil, k).json(t)["counts"].(map[string]any)
		return c["installed"] == 2.0
	})
	for d, want := range map[*devicesim.Device]string{alice: "alice@example.com", bob: "bob@example.com"} {
		p, ok := d.InstalledProfile("com.example.wifi")
		if !ok || eapUser(d) != want || !p.Signed || ssid(d) != "Corp-v1" {
			t.Fatalf("%s: installed %+v (user %q)", want, p, eapUser(d))
		}
	}
	install := func(d *devicesim.Device) string {
		t.Helper()
		hist := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", nil, k)
		mustStatus(t, hist, 200)
		uuid := ""
		for _, c := range hist.json(t)["commands"].([]any) {
			if c := c.(map[string]any); c["request_type"] == "InstallProfile" {
				if uuid != "" {
					t.Fatalf("two installs: %s", hist.body)
				}
				uuid = c["command_uuid"].(string)
			}
		}
		return uuid
	}
	ua, ub := install(alice), install(bob)
	if ua == "" || ua != ub {
		t.Fatalf("the install commands: %q and %q, want one shared command", ua, ub)
	}
	// Re-sending it from the device's history would send the template:
	// refused (the reconciler re-queues profiles).
	if st := e.Server.App.Devices; st != nil {
		if _, _, err := st.Resend(t.Context(), alice.MDM.EnrollmentID, ua, "test"); err == nil {
			t.Fatal("a template command was re-queued as it is stored")
		}
	}
}
