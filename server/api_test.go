package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/http/api"
	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/server"
	"github.com/pomona-mdm/pomona/store"
)

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, a.body)
	}
	return m
}

func (a answer) code(t testing.TB) string {
	t.Helper()
	c, _ := a.json(t)["code"].(string)
	return c
}

// do sends a request; body may be a string (sent as-is) or a value (JSON).
func do(t testing.TB, e *testenv.Env, method, path string, body any, key string, hdr ...string) answer {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func mustStatus(t testing.TB, a answer, want int) {
	t.Helper()
	if a.status != want {
		t.Fatalf("status %d, want %d: %s", a.status, want, a.body)
	}
}

func TestAPIAuthentication(t *testing.T) {
	e := testenv.Start(t, func(c *testenvConfig) { c.AdminAPIKey = "bootstrap-key-for-automation-0123456789" })
	// With a bootstrap key no first-start key is made.
	if e.APIKey != "" {
		t.Fatal("first-start key created although --admin-api-key was given")
	}
	for _, tc := range []struct {
		name, header string
		want         int
	}{
		{"no header", "", 401},
		{"wrong scheme", "Basic abc", 401},
		{"empty bearer", "Bearer ", 401},
		{"wrong bootstrap", "Bearer bootstrap-key-for-automation-012345678", 401},
		{"malformed key", "Bearer pomona_x_y", 401},
		{"well-formed unknown key", "Bearer pomona_aaaaaaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 401},
		{"bootstrap", "Bearer bootstrap-key-for-automation-0123456789", 200},
		{"bootstrap lower-case scheme", "bearer bootstrap-key-for-automation-0123456789", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, e, "GET", "/api/v1/tenants", nil, "", "Authorization", tc.header)
			mustStatus(t, a, tc.want)
			if tc.want == 401 {
				if a.code(t) != "unauthorized" || a.header.Get("WWW-Authenticate") == "" {
					t.Fatalf("401 without code or challenge: %s %v", a.body, a.header)
				}
			}
		})
	}

	// Keys made through the API work until revoked; secrets never come back.
	boot := "bootstrap-key-for-automation-0123456789"
	a := do(t, e, "POST", "/api/v1/apikeys", map[string]string{"name": "ci"}, boot)
	mustStatus(t, a, 201)
	key := a.json(t)["key"].(string)
	id := a.json(t)["id"].(string)
	mustStatus(t, do(t, e, "GET", "/api/v1/server", nil, key), 200)
	list := do(t, e, "GET", "/api/v1/apikeys", nil, key)
	if strings.Contains(string(list.body), key[len(key)-20:]) || strings.Contains(string(list.body), "secret") {
		t.Fatalf("key list leaks the secret: %s", list.body)
	}
	if !strings.Contains(string(list.body), `"last_used_at"`) {
		t.Fatalf("last use not recorded: %s", list.body)
	}
	mustStatus(t, do(t, e, "DELETE", "/api/v1/apikeys/"+id, nil, boot), 204)
	mustStatus(t, do(t, e, "GET", "/api/v1/server", nil, key), 401)
	mustStatus(t, do(t, e, "DELETE", "/api/v1/apikeys/nope", nil, boot), 404)
	mustStatus(t, do(t, e, "POST", "/api/v1/apikeys", map[string]string{"name": ""}, boot), 422)
}

type testenvConfig = serverConfig

func TestTenantsAPI(t *testing.T) {
	e := testenv.Start(t)
	k := e.APIKey
	a := do(t, e, "POST", "/api/v1/tenants", map[string]any{"name": "Example Corp", "domains": []string{"Example.com", "corp.example.net."}}, k)
	mustStatus(t, a, 201)
	ten := a.json(t)
	id := ten["id"].(string)
	if ten["require_second_factor"] != true {
		t.Fatal("second factor not required by default")
	}
	if got := ten["domains"].([]any); len(got) != 2 || got[0] != "corp.example.net" || got[1] != "example.com" {
		t.Fatalf("domains not normalised: %v", got)
	}
	if ten["enrollment_url"] != e.URL+"/enroll/"+id || a.header.Get("Location") != "/api/v1/tenants/"+id {
		t.Fatalf("enrollment_url %v, Location %q", ten["enrollment_url"], a.header.Get("Location"))
	}

	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"duplicate domain", map[string]any{"name": "B", "domains": []string{"EXAMPLE.com"}}, 409, "conflict"},
		{"no domains", map[string]any{"name": "B", "domains": []string{}}, 422, "validation_failed"},
		{"bad domain", map[string]any{"name": "B", "domains": []string{"not a domain"}}, 422, "validation_failed"},
		{"no name", map[string]any{"domains": []string{"b.example"}}, 422, "validation_failed"},
		{"unknown field", `{"name":"B","domains":["b.example"],"colour":"red"}`, 400, "unknown_field"},
		{"malformed JSON", `{"name":"B",`, 400, "invalid_json"},
		{"wrong type", `{"name":"B","domains":"b.example"}`, 400, "invalid_json"},
		{"two objects", `{"name":"B","domains":["b.example"]}{}`, 400, "invalid_json"},
		{"empty body", ``, 400, "invalid_json"},
		{"oversized", `{"name":"` + strings.Repeat("x", api.MaxBody) + `","domains":["b.example"]}`, 413, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, e, "POST", "/api/v1/tenants", tc.body, k)
			mustStatus(t, a, tc.status)
			if a.code(t) != tc.code || a.json(t)["error"] == "" {
				t.Fatalf("code %q, want %q: %s", a.code(t), tc.code, a.body)
			}
		})
	}
	// Wrong content type.
	a = do(t, e, "POST", "/api/v1/tenants", nil, k, "Content-Type", "text/plain")
	mustStatus(t, a, 415)
	// None of the refused requests left anything behind.
	list := do(t, e, "GET", "/api/v1/tenants", nil, k).json(t)["tenants"].([]any)
	if len(list) != 1 {
		t.Fatalf("%d tenants after refused creates", len(list))
	}

	// Get by id and by domain; filter by domain.
	mustStatus(t, do(t, e, "GET", "/api/v1/tenants/"+id, nil, k), 200)
	if got := do(t, e, "GET", "/api/v1/tenants/example.com", nil, k).json(t)["id"]; got != id {
		t.Fatalf("by domain: %v", got)
	}
	mustStatus(t, do(t, e, "GET", "/api/v1/tenants/tn_missing", nil, k), 404)
	if got := do(t, e, "GET", "/api/v1/tenants?domain=nobody.example", nil, k).json(t)["tenants"].([]any); len(got) != 0 {
		t.Fatalf("domain filter: %v", got)
	}

	// Patch: policy and domains; a domain in use cannot be removed.
	a = do(t, e, "PATCH", "/api/v1/tenants/"+id, map[string]any{"require_second_factor": false, "name": "Example"}, k)
	mustStatus(t, a, 200)
	if a.json(t)["require_second_factor"] != false || a.json(t)["name"] != "Example" {
		t.Fatalf("patch: %s", a.body)
	}
	mustStatus(t, do(t, e, "POST", "/api/v1/users", map[string]any{"email": "alice@corp.example.net", "password": "long enough"}, k), 201)
	a = do(t, e, "PATCH", "/api/v1/tenants/"+id, map[string]any{"domains": []string{"example.com"}}, k)
	mustStatus(t, a, 409)
	if a.code(t) != "in_use" || !strings.Contains(string(a.body), "corp.example.net") {
		t.Fatalf("removing a used domain: %s", a.body)
	}
	// Delete: refused with users, done with cascade.
	mustStatus(t, do(t, e, "DELETE", "/api/v1/tenants/"+id, nil, k), 409)
	mustStatus(t, do(t, e, "DELETE", "/api/v1/tenants/"+id+"?cascade=maybe", nil, k), 400)
	mustStatus(t, do(t, e, "DELETE", "/api/v1/tenants/"+id+"?cascade=true", nil, k), 204)
	mustStatus(t, do(t, e, "GET", "/api/v1/users/alice@corp.example.net", nil, k), 404)
}

func TestUsersAPI(t *testing.T) {
	e := testenv.Start(t)
	k := e.APIKey
	tid := do(t, e, "POST", "/api/v1/tenants", map[string]any{"name": "A", "domains": []string{"a.example", "a2.example"}}, k).json(t)["id"].(string)
	do(t, e, "POST", "/api/v1/tenants", map[string]any{"name": "B", "domains": []string{"b.example"}}, k)

	a := do(t, e, "POST", "/api/v1/users", map[string]any{"tenant": "a.example", "email": "Alice+Work@A.example", "name": "Alice", "password": "correct horse"}, k)
	mustStatus(t, a, 201)
	u := a.json(t)
	uid := u["id"].(string)
	if u["email"] != "alice+work@a.example" || u["managed_apple_id"] != "alice+work@a.example" || u["tenant_id"] != tid ||
		u["password_set"] != true || u["second_factor"] != "none" || u["enabled"] != true {
		t.Fatalf("created user: %s", a.body)
	}
	if strings.Contains(string(a.body), "argon2") || strings.Contains(string(a.body), "correct horse") {
		t.Fatalf("secret in answer: %s", a.body)
	}
	// The stored hash is argon2id with recorded parameters.
	stored, err := e.Server.Store.User(context.Background(), uid)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := password.ParamsOf(stored.PasswordHash); err != nil || p != password.Fast {
		t.Fatalf("stored hash %q params %+v %v", stored.PasswordHash, p, err)
	}
	if password.Verify("correct horse", stored.PasswordHash) != nil {
		t.Fatal("stored hash does not verify")
	}

	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"duplicate email", map[string]any{"email": "ALICE+work@a.example"}, 409, "conflict"},
		{"other tenant's domain", map[string]any{"tenant": tid, "email": "x@b.example"}, 422, "validation_failed"},
		{"unowned domain", map[string]any{"email": "x@nobody.example"}, 422, "validation_failed"},
		{"unknown tenant", map[string]any{"tenant": "tn_nope", "email": "x@a.example"}, 422, "validation_failed"},
		{"bad email", map[string]any{"email": "not-an-email"}, 422, "validation_failed"},
		{"bad managed apple id", map[string]any{"email": "y@a.example", "managed_apple_id": "nope"}, 422, "validation_failed"},
		{"short password", map[string]any{"email": "y@a.example", "password": "short"}, 422, "validation_failed"},
		{"secret field", map[string]any{"email": "y@a.example", "password_hash": "x"}, 400, "unknown_field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, e, "POST", "/api/v1/users", tc.body, k)
			mustStatus(t, a, tc.status)
			if a.code(t) != tc.code {
				t.Fatalf("code %q want %q: %s", a.code(t), tc.code, a.body)
			}
		})
	}
	// A user without a password, another managed Apple account, another tenant.
	mustStatus(t, do(t, e, "POST", "/api/v1/users", map[string]any{"email": "bob@a2.example", "managed_apple_id": "bob@appleid.a.example"}, k), 201)
	mustStatus(t, do(t, e, "POST", "/api/v1/users", map[string]any{"email": "zed@b.example"}, k), 201)

	// List with filters and pagination.
	all := do(t, e, "GET", "/api/v1/users", nil, k).json(t)["users"].([]any)
	if len(all) != 3 {
		t.Fatalf("%d users", len(all))
	}
	page := do(t, e, "GET", "/api/v1/users?tenant=a.example&limit=1", nil, k).json(t)
	if len(page["users"].([]any)) != 1 || page["next_after"] != "alice+work@a.example" {
		t.Fatalf("page 1: %v", page)
	}
	page = do(t, e, "GET", "/api/v1/users?tenant="+tid+"&limit=1&after=alice%2Bwork%40a.example", nil, k).json(t)
	if us := page["users"].([]any); len(us) != 1 || us[0].(map[string]any)["email"] != "bob@a2.example" {
		t.Fatalf("page 2: %v", page)
	}
	if got := do(t, e, "GET", "/api/v1/users?email=ZED@b.example", nil, k).json(t)["users"].([]any); len(got) != 1 {
		t.Fatalf("by email: %v", got)
	}
	mustStatus(t, do(t, e, "GET", "/api/v1/users?limit=0", nil, k), 400)
	mustStatus(t, do(t, e, "GET", "/api/v1/users?tenant=nobody.example", nil, k), 404)

	// Get by id or email; patch; disable ends sessions.
	mustStatus(t, do(t, e, "GET", "/api/v1/users/"+uid, nil, k), 200)
	mustStatus(t, do(t, e, "GET", "/api/v1/users/alice+work@a.example", nil, k), 200)
	mustStatus(t, do(t, e, "GET", "/api/v1/users/us_nope", nil, k), 404)
	a = do(t, e, "PATCH", "/api/v1/users/"+uid, map[string]any{"name": "Alice W", "enabled": false}, k)
	mustStatus(t, a, 200)
	if a.json(t)["enabled"] != false || a.json(t)["name"] != "Alice W" {
		t.Fatalf("patch: %s", a.body)
	}
	after, _ := e.Server.Store.User(context.Background(), uid)
	if after.TokensNotBefore.IsZero() {
		t.Fatal("disabling did not end the user's sessions")
	}
	mustStatus(t, do(t, e, "PATCH", "/api/v1/users/"+uid, map[string]any{"email": "alice@b.example"}, k), 422)
	mustStatus(t, do(t, e, "PATCH", "/api/v1/users/"+uid, map[string]any{"email": "bob@a2.example"}, k), 409)
	if got := do(t, e, "GET", "/api/v1/users/"+uid, nil, k).json(t)["email"]; got != "alice+work@a.example" {
		t.Fatalf("refused patch changed the email to %v", got)
	}

	// Password: rules apply, the new one verifies, sessions end.
	mustStatus(t, do(t, e, "POST", "/api/v1/users/"+uid+"/password", map[string]any{"password": "short"}, k), 422)
	before, _ := e.Server.Store.User(context.Background(), uid)
	mustStatus(t, do(t, e, "POST", "/api/v1/users/"+uid+"/password", map[string]any{"password": "a new long password"}, k), 200)
	after, _ = e.Server.Store.User(context.Background(), uid)
	if password.Verify("a new long password", after.PasswordHash) != nil || !after.TokensNotBefore.After(before.TokensNotBefore) {
		t.Fatal("password not changed or sessions not ended")
	}

	// Second factor reset clears the sealed secret.
	if _, err := e.Server.Store.UpdateUser(context.Background(), uid, func(u *storeUser) error { u.TOTPSecret = []byte("sealed"); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := do(t, e, "GET", "/api/v1/users/"+uid, nil, k).json(t)["second_factor"]; got != "pending" {
		t.Fatalf("second_factor %v", got)
	}
	a = do(t, e, "DELETE", "/api/v1/users/"+uid+"/totp", nil, k)
	mustStatus(t, a, 200)
	if a.json(t)["second_factor"] != "none" {
		t.Fatalf("after reset: %s", a.body)
	}

	mustStatus(t, do(t, e, "DELETE", "/api/v1/users/"+uid, nil, k), 204)
	mustStatus(t, do(t, e, "DELETE", "/api/v1/users/"+uid, nil, k), 404)
}

func TestAPIRoutingErrorsAreJSON(t *testing.T) {
	e := testenv.Start(t)
	a := do(t, e, "GET", "/api/v1/nothing", nil, e.APIKey)
	mustStatus(t, a, 404)
	if a.code(t) != "not_found" {
		t.Fatal(string(a.body))
	}
	a = do(t, e, "PUT", "/api/v1/tenants", nil, e.APIKey)
	mustStatus(t, a, 405)
	if a.code(t) != "method_not_allowed" || a.header.Get("Allow") != "GET, POST" {
		t.Fatalf("405: %s %v", a.body, a.header)
	}
}

// Every route the API registers is documented in openapi.json, and every
// documented path exists.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := testenv.Start(t)
	a := do(t, e, "GET", "/api/v1/openapi.json", nil, "")
	mustStatus(t, a, 200)
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(a.body, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("not an OpenAPI 3 document: %v", err)
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	registered := (&api.API{}).Patterns()
	sort.Strings(documented)
	sort.Strings(registered)
	if strings.Join(documented, "\n") != strings.Join(registered, "\n") {
		t.Fatalf("openapi.json and the routes differ.\ndocumented:\n%s\n\nregistered:\n%s", strings.Join(documented, "\n"), strings.Join(registered, "\n"))
	}
}

func TestAuditLog(t *testing.T) {
	e := testenv.Start(t)
	k := e.APIKey
	mustStatus(t, do(t, e, "POST", "/api/v1/tenants", map[string]any{"name": "A", "domains": []string{"a.example"}}, k), 201)
	mustStatus(t, do(t, e, "POST", "/api/v1/users", map[string]any{"email": "amy@a.example", "password": "secret-password-1"}, k), 201)
	mustStatus(t, do(t, e, "POST", "/api/v1/users", map[string]any{"email": "amy@a.example"}, k), 409)
	mustStatus(t, do(t, e, "POST", "/api/v1/users/amy@a.example/password", map[string]any{"password": "another-password"}, k), 200)
	do(t, e, "GET", "/api/v1/tenants", nil, k) // reads are not audited
	a := do(t, e, "GET", "/api/v1/audit", nil, k)
	mustStatus(t, a, 200)
	if strings.Contains(string(a.body), "secret-password") || strings.Contains(string(a.body), "another-password") {
		t.Fatal("the audit log holds a password")
	}
	entries := a.json(t)["entries"].([]any)
	if len(entries) != 4 {
		t.Fatalf("%d entries: %s", len(entries), a.body)
	}
	last := entries[0].(map[string]any)
	if last["action"] != "POST /api/v1/users/{id}/password" || last["target"] != "amy@a.example" || last["status"] != float64(200) ||
		!strings.HasPrefix(last["actor"].(string), "key:") {
		t.Fatalf("entry %v", last)
	}
	if entries[1].(map[string]any)["status"] != float64(409) {
		t.Fatal("a refused change is not audited")
	}
	f := do(t, e, "GET", "/api/v1/audit?action=POST+/api/v1/tenants", nil, k).json(t)["entries"].([]any)
	if len(f) != 1 {
		t.Fatalf("filter: %v", f)
	}
}

// Behind a trusted proxy the audit log (and sign-in limits) see the
// client from X-Forwarded-For; from anyone else the header is ignored.
func TestTrustedProxies(t *testing.T) {
	for _, c := range []struct {
		trusted, want string
	}{{"127.0.0.1", "198.51.100.7:0"}, {"", "127.0.0.1:"}, {"10.0.0.0/8", "127.0.0.1:"}} {
		e := testenv.Start(t, func(cfg *server.Config) { cfg.TrustedProxies = c.trusted })
		mustStatus(t, do(t, e, "POST", "/api/v1/tenants", map[string]any{"name": "A", "domains": []string{"a.example"}}, e.APIKey,
			"X-Forwarded-For", "6.6.6.6, 198.51.100.7"), 201)
		es, err := e.Server.Store.Audit(context.Background(), store.AuditFilter{Limit: 1})
		if err != nil || len(es) != 1 || !strings.HasPrefix(es[0].Remote, c.want) {
			t.Fatalf("trusted %q: %+v %v", c.trusted, es, err)
		}
	}
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.TrustedProxies = t.TempDir(), "proxy.example"
	if _, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "--trusted-proxies") {
		t.Fatalf("bad --trusted-proxies: %v", err)
	}
}
