package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/internal/testenv"
)

// TestDeviceListRefusesAMangledQuery (break8): the device list refused a
// misspelt status or platform value, but a query it could not read or a
// misspelt parameter name listed every device, as if no filter were
// given — r.URL.Query() drops a pair holding ';' or a bad escape, and
// names the handler does not read were ignored. Each is a 400
// invalid_parameter now, through a real listener. On the code before,
// every case answered 200 with the whole list.
func TestDeviceListRefusesAMangledQuery(t *testing.T) {
	e := testenv.Start(t)
	for _, c := range []struct{ query, want string }{
		{"status=%00%27;DROP", "cannot be read"},
		{"status=enrolled;platform=iOS", "cannot be read"},
		{"status=enrolled&platform=%zz", "cannot be read"},
		{"stauts=enrolled", `unknown parameter "stauts"`},
		{"state=enrolled", `unknown parameter "state"`},
		{"Status=enrolled", `unknown parameter "Status"`},
		{"platfrom=iOS&status=enrolled", `unknown parameter "platfrom"`},
		{strings.Repeat("x", 5000) + "=1", `unknown parameter "xxxx`},
		{"%0d%0aX-Injected:%201=1", `unknown parameter "\r\nX-Injected: 1"`},
		{"platform=iOS&platform=macOS", `"platform" is given 2 times`},
		{"status=enrolled&status=", `"status" is given 2 times`},
	} {
		req, err := http.NewRequest("GET", e.URL+"/api/v1/devices?"+c.query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.APIKey)
		resp, err := e.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p struct{ Error, Code string }
		json.Unmarshal(b, &p)
		if resp.StatusCode != 400 || p.Code != "invalid_parameter" || !strings.Contains(p.Error, c.want) || len(b) > 1000 {
			t.Errorf("?%.60s: %d %.300s; want 400 invalid_parameter saying %q", c.query, resp.StatusCode, b, c.want)
		}
	}
	// What the CLI sends still works.
	req, _ := http.NewRequest("GET", e.URL+"/api/v1/devices?limit=1000&silent=true&status=enrolled&platform=iOS&before=x&tenant=&user=", nil)
	req.Header.Set("Authorization", "Bearer "+e.APIKey)
	resp, err := e.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("every known parameter: %d", resp.StatusCode)
	}
}

// TestNamesRefuseControlCharacters (break8): a group's name refused only
// CR, LF and tab, a user's name C0 and DEL: ESC (group) and the
// one-character CSI U+009B (both) were stored, and `pomona group show`
// printed them to the administrator's terminal. Every control character
// (C0, DEL, C1) is refused now, through a real listener: 422 (201 on the
// code before). (A PayloadIdentifier with one: mobileconfig's TestRead.)
func TestNamesRefuseControlCharacters(t *testing.T) {
	e := testenv.Start(t)
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, e.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, b := call("POST", "/api/v1/tenants", `{"name":"A","domains":["a.example"]}`); code != 201 {
		t.Fatalf("tenant: %d %s", code, b)
	}
	for _, c := range []struct{ what, path, body string }{
		{"group name with ESC", "/api/v1/groups", `{"tenant_id":"a.example","name":"Ops\u001b[2J"}`},
		{"group name with CSI U+009B", "/api/v1/groups", `{"tenant_id":"a.example","name":"Ops\u009b2J"}`},
		{"group name with DEL", "/api/v1/groups", `{"tenant_id":"a.example","name":"Ops\u007f"}`},
		{"group name with NUL", "/api/v1/groups", `{"tenant_id":"a.example","name":"Ops\u0000"}`},
		{"user name with CSI U+009B", "/api/v1/users", `{"email":"amy@a.example","password":"amy-password-1","name":"Amy\u009b31m"}`},
		{"user name with U+0085 (NEL)", "/api/v1/users", `{"email":"bob@a.example","password":"bob-password-1","name":"Bob\u0085Admin"}`},
	} {
		if code, b := call("POST", c.path, c.body); code != 422 && code != 400 {
			t.Errorf("%s: %d %.200s; want it refused", c.what, code, b)
		}
	}
	if code, b := call("POST", "/api/v1/groups", `{"tenant_id":"a.example","name":"Ops – Zürich"}`); code != 201 {
		t.Errorf("a group name without control characters: %d %s", code, b)
	}
}
