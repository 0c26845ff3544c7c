package server_test

import (
	"testing"
)

// Bulk commands as a clumsy or hostile admin: a tenant with no devices, a
// command Apple forbids for user enrollments, ids of nothing. Each is a
// clear 4xx with nothing written — not the command, not the
// idempotency key (the same key then works for a good request), and no
// queue row anywhere.
func TestAttackBulkRefusalsWriteNothing(t *testing.T) {
	w := newWorld(t, true)
	e := w.e
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	devicePath := "/api/v1/devices/" + d.MDM.EnrollmentID + "/commands"
	count := func() int {
		t.Helper()
		return len(do(t, e, "GET", devicePath, nil, e.APIKey).json(t)["commands"].([]any))
	}
	before := count()
	const key = `"attack-bulk-2b0c1f9e"`
	for _, c := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"tenant without devices", `{"targets":{"tenant":"other.example"},"command":{"request_type":"ProfileList"},"push":false}`, 409, "not_enrolled"},
		{"forbidden for user enrollments", `{"targets":{"tenant":"example.com"},"command":{"request_type":"EraseDevice"},"push":false}`, 422, "command_refused"},
		{"unknown device ids", `{"targets":{"devices":["en_nothing","en_nothing","APPLE-NOBODY"]},"command":{"request_type":"ProfileList"},"push":false}`, 409, "not_enrolled"},
		{"unknown tenant", `{"targets":{"tenant":"tn_nothing"},"command":{"request_type":"ProfileList"},"push":false}`, 404, ""},
	} {
		a := do(t, e, "POST", "/api/v1/commands", c.body, e.APIKey, "Idempotency-Key", key)
		mustStatus(t, a, c.status)
		if c.code != "" && a.code(t) != c.code {
			t.Fatalf("%s: %s", c.name, a.body)
		}
		if n := count(); n != before {
			t.Fatalf("%s: %d commands on the device, %d before", c.name, n, before)
		}
	}
	// The key was never recorded: a good request with it queues.
	a := do(t, e, "POST", "/api/v1/commands", `{"targets":{"tenant":"example.com","devices":["`+d.MDM.EnrollmentID+`"]},"command":{"request_type":"ProfileList"},"push":false}`, e.APIKey, "Idempotency-Key", key)
	mustStatus(t, a, 201)
	if got := a.json(t)["queued"]; got != float64(1) {
		t.Fatalf("tenant and device listed together: queued %v (want the device once)", got)
	}
	if n := count(); n != before+1 {
		t.Fatalf("%d commands on the device, want %d", n, before+1)
	}
}
