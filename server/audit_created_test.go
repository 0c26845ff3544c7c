package server_test

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

// TestAuditNamesWhatCreatesMade: the audit entry of every create, through
// the API and through the console, names the object it made. A create's
// route has no {id}, and its entry said "-" (`POST /api/v1/tenants -`,
// newuser6 finding): which tenant a key made could not be read from the
// log. A refused create still names nothing (nothing was made). Fails on
// the old code at every create.
func TestAuditNamesWhatCreatesMade(t *testing.T) {
	w, clk := consoleWorld(t)
	e, k := w.e, w.e.APIKey
	content := base64.StdEncoding.EncodeToString(wifiProfile("v1"))
	for _, c := range []struct {
		path string
		body map[string]any
	}{
		{"/api/v1/tenants", map[string]any{"name": "Audited", "domains": []string{"audited.example"}}},
		{"/api/v1/users", map[string]any{"email": "amy@audited.example"}},
		{"/api/v1/groups", map[string]any{"tenant_id": w.tenant, "name": "Audited group"}},
		{"/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": content}},
		{"/api/v1/apikeys", map[string]any{"name": "audited key"}},
		{"/api/v1/webhooks", map[string]any{"url": "https://hooks.example/audited"}},
		{"/api/v1/admins", map[string]any{"email": "ops@audited.example", "role": "admin"}},
		{"/api/v1/abm/tokens", map[string]any{"tenant": w.tenant, "name": "Audited ABM"}},
	} {
		a := do(t, e, "POST", c.path, c.body, k)
		mustStatus(t, a, 201)
		id, _ := a.json(t)["id"].(string)
		es := do(t, e, "GET", "/api/v1/audit?"+url.Values{"action": {"POST " + c.path}}.Encode(), nil, k).json(t)["entries"].([]any)
		if len(es) == 0 || id == "" || es[0].(map[string]any)["target"] != id { // newest first
			t.Errorf("POST %s made %q; its audit entries: %v", c.path, id, es)
		}
	}
	// Refused: nothing made, no target.
	mustStatus(t, do(t, e, "POST", "/api/v1/tenants", map[string]any{"name": "Again", "domains": []string{"audited.example"}}, k), 409)
	if es := do(t, e, "GET", "/api/v1/audit?"+url.Values{"action": {"POST /api/v1/tenants"}}.Encode(), nil, k).json(t)["entries"].([]any); len(es) == 0 ||
		es[0].(map[string]any)["status"] != float64(409) || es[0].(map[string]any)["target"] != nil && es[0].(map[string]any)["target"] != "" {
		t.Errorf("a refused create's entry: %v", es)
	}

	// The console's creates: the entry's target is the id the API lists.
	u := newConsoleUser(t, w, clk, "owner@ops.example", "owner")
	u.get("/console/")
	for _, c := range []struct {
		path, list string
		form       url.Values
	}{
		{"/console/tenants", "/api/v1/tenants", url.Values{"name": {"Console tenant"}, "domains": {"console.example"}}},
		{"/console/users", "/api/v1/users", url.Values{"email": {"cory@console.example"}}},
		{"/console/groups", "/api/v1/groups?tenant_id=" + w.tenant, url.Values{"tenant": {w.tenant}, "name": {"Console group"}}},
		{"/console/apikeys", "/api/v1/apikeys", url.Values{"name": {"console key"}}},
		{"/console/webhooks", "/api/v1/webhooks", url.Values{"url": {"https://hooks.example/console"}}},
		{"/console/admins", "/api/v1/admins", url.Values{"email": {"help@console.example"}, "role": {"helpdesk"}}},
		{"/console/abm", "/api/v1/abm/tokens", url.Values{"tenant": {w.tenant}, "name": {"Console ABM"}}},
	} {
		if code, body := u.post(c.path, c.form); code != 200 {
			t.Fatalf("POST %s: %d %.300s", c.path, code, body)
		}
		es := do(t, e, "GET", "/api/v1/audit?"+url.Values{"action": {"POST " + c.path}}.Encode(), nil, k).json(t)["entries"].([]any)
		target, _ := es[0].(map[string]any)["target"].(string)
		list := do(t, e, "GET", c.list, nil, k)
		if len(es) != 1 || target == "" || !strings.Contains(string(list.body), `"id":"`+target+`"`) {
			t.Errorf("POST %s: its audit entries %v; target %q not among %s", c.path, es, target, c.list)
		}
	}
	code, _ := u.postMultipart("/console/profiles", map[string]string{"tenant": w.tenant}, map[string][]byte{"file": []byte(strings.ReplaceAll(string(wifiProfile("v1")), "com.example.wifi", "com.example.console"))})
	es := do(t, e, "GET", "/api/v1/audit?"+url.Values{"action": {"POST /console/profiles"}}.Encode(), nil, k).json(t)["entries"].([]any)
	if target, _ := es[0].(map[string]any)["target"].(string); code != 200 || !strings.HasPrefix(target, "pr_") {
		t.Errorf("profile upload in the console: %d, audit entries %v", code, es)
	}
}
