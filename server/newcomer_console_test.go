package server_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/store"
)

// TestConsoleRefusalKeepsTheTenant: a refused form of the Groups or
// Profiles page (a group name taken, a profile identifier uploaded
// already) comes back to the page of the tenant it was posted for, with
// the reason. Before, it came back to /console/groups or /console/profiles
// without ?tenant=, which shows the first tenant: "the tenant has a
// profile with the identifier com.example.wifi already" above another
// tenant's "No profiles yet" (a newcomer's upload of the README's example
// twice, with a second tenant named before the demo's).
func TestConsoleRefusalKeepsTheTenant(t *testing.T) {
	w, clk := consoleWorld(t)
	do(t, w.e, "POST", "/api/v1/tenants", map[string]any{"name": "AAA listed first", "domains": []string{"first.example"}}, w.e.APIKey)
	u := newConsoleUser(t, w, clk, "owner@ops.example", store.RoleOwner)
	selected := `<option value="` + w.tenant + `" selected>`

	if code, body := u.post("/console/groups", url.Values{"tenant": {w.tenant}, "name": {"Phones"}}); code != 200 || !strings.Contains(body, "Group Phones created.") {
		t.Fatalf("create group: %d %.500s", code, body)
	}
	code, body := u.post("/console/groups", url.Values{"tenant": {w.tenant}, "name": {"Phones"}})
	if !strings.Contains(body, `class="flash error"`) || !strings.Contains(body, selected) || !strings.Contains(body, ">Phones</a>") {
		t.Errorf("a group name taken: %d, not back on its tenant's page with the reason:\n%.3000s", code, body)
	}

	if code, body := u.postMultipart("/console/profiles", map[string]string{"tenant": w.tenant}, map[string][]byte{"file": wifiProfile("v1")}); code != 200 || !strings.Contains(body, "uploaded") {
		t.Fatalf("upload: %d %.500s", code, body)
	}
	code, body = u.postMultipart("/console/profiles", map[string]string{"tenant": w.tenant}, map[string][]byte{"file": wifiProfile("v1")})
	if !strings.Contains(body, "com.example.wifi already") || !strings.Contains(body, selected) || strings.Contains(body, "No profiles yet") {
		t.Errorf("the same profile again: %d, not back on its tenant's page with the reason:\n%.3000s", code, body)
	}
}

// TestConsoleDeviceCheckIsReadable: the device page says what the
// advisory signature check of the enrollment request found in words
// ("Device check other" told a newcomer nothing), keeping the API's value.
func TestConsoleDeviceCheckIsReadable(t *testing.T) {
	w, clk := consoleWorld(t)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	u := newConsoleUser(t, w, clk, "owner@ops.example", store.RoleOwner)
	dev, err := w.e.Server.Store.EnrollmentByAppleID(t.Context(), d.MDM.EnrollmentID)
	if err != nil {
		t.Fatal(err)
	}
	code, body := u.get("/console/devices/" + dev.ID)
	if want := `<dt>Device check</dt><dd>signed, not by Apple (a simulated or test device) <span class="muted">(other)</span></dd>`; code != 200 || !strings.Contains(body, want) {
		t.Errorf("device page: %d, lacks %s:\n%.3000s", code, want, body)
	}
}
