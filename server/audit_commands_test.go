package server_test

import (
	"fmt"
	"net/url"
	"testing"
)

// Command requests are audited exactly once each, whether the entry rode
// in the enqueue's transaction (a success) or was written afterwards (a
// refusal, an unknown device, a replayed Idempotency-Key), with the status
// the client was answered.
func TestAuditOfCommandRequests(t *testing.T) {
	w := newWorld(t, true)
	e := w.e
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	path := "/api/v1/devices/" + d.MDM.EnrollmentID + "/commands"
	const single, bulk = "POST /api/v1/devices/{id}/commands", "POST /api/v1/commands"
	for _, c := range []struct {
		path, body string
		hdr        []string
		status     int
	}{
		{path, `{"request_type":"DeviceInformation","queries":["OSVersion"],"push":false}`, nil, 201},
		// Apple forbids erasing a user enrollment.
		{path, `{"request_type":"EraseDevice","push":false}`, nil, 422},
		{"/api/v1/devices/en_nosuchdevice/commands", `{"request_type":"ProfileList","push":false}`, nil, 404},
		{path, `{"request_type":"ProfileList","push":false}`, []string{"Idempotency-Key", `"audit-1"`}, 201},
		{path, `{"request_type":"ProfileList","push":false}`, []string{"Idempotency-Key", `"audit-1"`}, 201}, // replayed
		{"/api/v1/commands", `{"targets":{"users":["alice@example.com"]},"command":{"request_type":"ProfileList"},"push":false}`, nil, 201},
		{"/api/v1/commands", `{"targets":{"users":["alice@example.com"]},"command":{"request_type":"EraseDevice"},"push":false}`, nil, 422},
	} {
		mustStatus(t, do(t, e, "POST", c.path, c.body, e.APIKey, c.hdr...), c.status)
	}
	got := func(action string) string {
		t.Helper()
		var out []string
		for _, x := range do(t, e, "GET", "/api/v1/audit?action="+url.QueryEscape(action), nil, e.APIKey).json(t)["entries"].([]any) {
			m := x.(map[string]any)
			out = append(out, fmt.Sprint(m["status"]))
		}
		return fmt.Sprint(out) // newest first
	}
	if s := got(single); s != "[201 201 404 422 201]" {
		t.Fatalf("single-device command entries: %s", s)
	}
	if s := got(bulk); s != "[422 201]" {
		t.Fatalf("bulk command entries: %s", s)
	}
}
