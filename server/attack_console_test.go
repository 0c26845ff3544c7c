package server_test

import (
	"context"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/http/console"
	"github.com/pomona-mdm/pomona/store"
)

// TestAttackConsoleRolesEveryForm: an auditor and a help-desk account send
// every form the console has (with real ids, the session's CSRF token and
// the console's origin); each one their role does not allow is refused
// with 403 and changes nothing. The allowed sets are written here, not
// read from the console's route table, so a route registered with the
// wrong permission fails this test.
func TestAttackConsoleRolesEveryForm(t *testing.T) {
	w, clk := consoleWorld(t)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	dev := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID, nil, e.APIKey).json(t)["id"].(string)
	a := do(t, e, "POST", "/api/v1/devices/"+dev+"/commands", map[string]any{"request_type": "ProfileList"}, e.APIKey)
	mustStatus(t, a, 201)
	cmdUUID := a.json(t)["command_uuid"].(string)
	alice, err := e.Server.Store.UserByEmail(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	target, _, err := e.Server.Admins.Invite(ctx, "target@ops.example", "", store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	key := do(t, e, "POST", "/api/v1/apikeys", map[string]any{"name": "k"}, e.APIKey)
	mustStatus(t, key, 201)
	keyID, _ := key.json(t)["id"].(string)
	hook := do(t, e, "POST", "/api/v1/webhooks", map[string]any{"url": "https://hooks.example/x", "events": []string{"device.renewal_queued"}}, e.APIKey)
	mustStatus(t, hook, 201)
	hookID, _ := hook.json(t)["id"].(string)
	group := do(t, e, "POST", "/api/v1/groups", map[string]any{"tenant_id": w.tenant, "name": "Wi-Fi users"}, e.APIKey)
	mustStatus(t, group, 201)
	groupID, _ := group.json(t)["id"].(string)
	mustStatus(t, do(t, e, "POST", "/api/v1/groups/"+groupID+"/members", map[string]any{"users": []string{"alice@example.com"}}, e.APIKey), 200)
	prof := do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("v1"))}, e.APIKey)
	mustStatus(t, prof, 201)
	profileID, _ := prof.json(t)["id"].(string)
	ids := map[string]string{"id": "", "uuid": cmdUUID, "user": alice.ID, "group": groupID, "device": dev}
	idFor := func(pattern string) string {
		switch {
		case strings.Contains(pattern, "/tenants/"):
			return w.tenant
		case strings.Contains(pattern, "/users/"):
			return alice.ID
		case strings.Contains(pattern, "/devices/"):
			return dev
		case strings.Contains(pattern, "/apikeys/"):
			return keyID
		case strings.Contains(pattern, "/webhooks/"):
			return hookID
		case strings.Contains(pattern, "/admins/"):
			return target.ID
		case strings.Contains(pattern, "/groups/"):
			return groupID
		case strings.Contains(pattern, "/profiles/"):
			return profileID
		}
		return ""
	}
	// What each role may send (besides logout, which every role may).
	allowed := map[string]map[string]bool{
		store.RoleAuditor: {"POST /console/tenants/{id}/check": true},
		store.RoleHelpDesk: {"POST /console/tenants/{id}/check": true, "POST /console/users/{id}/reauthenticate": true,
			"POST /console/devices/{id}/commands/{uuid}/resend": true, "POST /console/devices/{id}/push": true,
			// Retrying a failed profile install is help desk's resend.
			"POST /console/profiles/{id}/devices/{device}/retry": true},
	}
	forms := 0
	for _, role := range []string{store.RoleAuditor, store.RoleHelpDesk} {
		u := newConsoleUser(t, w, clk, role+"@ops.example", role)
		u.get("/console/")
		for _, pattern := range (&console.Console{}).Patterns() {
			method, path, _ := strings.Cut(pattern, " ")
			if method != "POST" || pattern == "POST /console/logout" || allowed[role][pattern] {
				continue
			}
			ids["id"] = idFor(pattern)
			for k, v := range ids {
				path = strings.ReplaceAll(path, "{"+k+"}", url.PathEscape(v))
			}
			form := url.Values{"name": {"Changed"}, "domains": {"changed.example"}, "email": {"new@example.com"}, "enabled": {"false"},
				"password": {"a new password 123"}, "role": {"owner"}, "request_type": {"ProfileList"}, "immediately": {"on"},
				"url": {"https://evil.example/hook"}, "events": {"device.renewal_queued"}}
			if code, body := u.post(path, form); code != 403 || !strings.Contains(body, "does not allow") {
				t.Errorf("%s: %s answered %d", role, pattern, code)
			}
			forms++
		}
	}
	if forms < 20 {
		t.Fatalf("only %d forms tried", forms)
	}
	// Nothing changed.
	if got, err := e.Server.Store.UserByEmail(ctx, "alice@example.com"); err != nil || !got.Enabled || got.PasswordHash != alice.PasswordHash {
		t.Errorf("alice after the attempts: %+v %v", got, err)
	}
	if _, err := e.Server.Store.TenantByDomain(ctx, "changed.example"); err == nil {
		t.Error("a refused form changed a tenant")
	}
	if got, err := e.Server.Store.Enrollment(ctx, dev); err != nil || got.Status != store.EnrollmentEnrolled {
		t.Errorf("device after the attempts: %+v %v", got, err)
	}
	if list := do(t, e, "GET", "/api/v1/devices/"+dev+"/commands", nil, e.APIKey).json(t)["commands"].([]any); len(list) != 1 {
		t.Errorf("commands after the attempts: %v", list)
	}
	if k, err := e.Server.Store.APIKey(ctx, keyID); err != nil || !k.RevokedAt.IsZero() {
		t.Errorf("API key after the attempts: %+v %v", k, err)
	}
	if got, err := e.Server.Store.Admin(ctx, target.ID); err != nil || got.Role != store.RoleAdmin {
		t.Errorf("target admin after the attempts: %+v %v", got, err)
	}
}
