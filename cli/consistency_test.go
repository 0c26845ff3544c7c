package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeAPI is an admin API that answers the calls the tests below make
// with fixed values and records each request (method and escaped path).
type fakeAPI struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{}
	user := `{"id":"us_1","tenant_id":"tn_1","email":"amy@a.example","name":"Amy","enabled":true,"password_set":true,"second_factor":"none"}`
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.URL.EscapedPath())
		f.mu.Unlock()
		p, q := r.URL.Path, r.URL.Query()
		w.Header().Set("Content-Type", "application/json")
		reply := func(status int, body string) {
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		}
		switch {
		case r.Method == http.MethodDelete && q.Get("dry_run") == "true":
			reply(200, `{"devices_to_unenroll":0}`)
		case r.Method == http.MethodDelete && (strings.HasPrefix(p, "/api/v1/tenants/") || strings.HasPrefix(p, "/api/v1/apikeys/")) ||
			r.Method == http.MethodDelete && strings.HasPrefix(p, "/api/v1/users/") && !strings.HasSuffix(p, "/totp"):
			w.WriteHeader(http.StatusNoContent)
		case strings.HasPrefix(p, "/api/v1/users/"):
			reply(200, user)
		case strings.HasPrefix(p, "/api/v1/admins/"):
			reply(200, `{"id":"ad_1","email":"root@a.example","role":"owner","setup_url":"https://x/setup","setup_expires_at":"2030-01-01T00:00:00Z"}`)
		case p == "/api/v1/devices":
			// 2100 devices, newest first, pages of at most limit.
			n, _ := strconv.Atoi(q.Get("limit"))
			start := 0
			if b := q.Get("before"); b != "" {
				start, _ = strconv.Atoi(strings.TrimPrefix(b, "en_"))
				start++
			}
			var ds []string
			next := ""
			for i := start; i < 2100 && len(ds) < n; i++ {
				ds = append(ds, fmt.Sprintf(`{"id":"en_%d","status":"enrolled","platform":"iOS","product":"iPhone15,3","user_id":"us_1"}`, i))
				if len(ds) == n && i < 2099 {
					next = fmt.Sprintf("en_%d", i)
				}
			}
			reply(200, fmt.Sprintf(`{"devices":[%s],"next_before":%q}`, strings.Join(ds, ","), next))
		case strings.HasSuffix(p, "/commands") && r.Method == http.MethodPost:
			reply(201, `{"command_uuid":"C0FFEE00-0000-4000-8000-000000000001"}`)
		case strings.HasSuffix(p, "/unenroll"):
			reply(202, `{"device":"en_1","command_uuid":"C0FFEE00-0000-4000-8000-000000000002"}`)
		case strings.HasSuffix(p, "/push"):
			reply(200, `{"pushes":[{"channel":"ch_1","ok":true,"status":200},{"channel":"ch_2","ok":false,"status":410,"reason":"Unregistered","dead_token":true}]}`)
		case strings.HasPrefix(p, "/api/v1/devices/"):
			reply(200, `{"id":"en_1","enrollment_id":"E1","tenant_id":"tn_1","user_id":"us_1","status":"enrolled","platform":"iOS","product":"iPhone15,3",
				"os_version":"18.2","device_signature":"apple","created_at":"2026-01-01T00:00:00Z","profile_identifier":"com.example.mdm",
				"channels":[{"id":"ch_1","kind":"device","pushable":true}],"inventory":{"device_information":{"OSVersion":"18.2"}}}`)
		case p == "/api/v1/push-certificate/csr":
			reply(200, `{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nMII=\n-----END CERTIFICATE REQUEST-----\n","next":"upload it to Apple"}`)
		default:
			reply(404, `{"title":"not found","status":404}`)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) vars() map[string]string {
	return map[string]string{"POMONA_SERVER": f.URL, "POMONA_API_KEY": "k"}
}

// requests returns the requests seen since the last call.
func (f *fakeAPI) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.seen
	f.seen = nil
	return s
}

// TestLeafHelpWord: `pomona <command> help`, like --help, prints the
// command's usage and flags on stdout and exits 0 instead of running it.
func TestLeafHelpWord(t *testing.T) {
	f := newFakeAPI(t)
	for _, tc := range []struct{ args, usage string }{
		{"serve help", "Usage: pomona serve [flags]\n"},
		{"bench help", "Usage: pomona bench ["},
		{"audit help", "Usage: pomona audit ["},
		{"version help", "Usage: pomona version [--json]\n"},
		{"tenant list help", "Usage: pomona tenant list\n"},
		{"device show help", "Usage: pomona device show <id or EnrollmentID>\n"},
	} {
		r := runCLI(t, nil, "", f.vars(), strings.Fields(tc.args)...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, tc.usage) || !strings.Contains(r.stdout, "Flags") || r.stderr != "" {
			t.Errorf("pomona %s: exit %d\nstdout: %s\nstderr: %s", tc.args, r.code, r.stdout, r.stderr)
		}
		if req := f.requests(); len(req) > 0 {
			t.Errorf("pomona %s called the API: %v", tc.args, req)
		}
	}
}

// TestSubcommandFlags: each subcommand of device, apikey, admin and
// push-cert has its own flags: another subcommand's flag is refused
// (exit 2, usage) and --help lists only its own.
func TestSubcommandFlags(t *testing.T) {
	f := newFakeAPI(t)
	for _, args := range []string{
		"device list --immediately",
		"device show --tenant a.example en_1",
		"device push --no-push en_1",
		"device unenroll --channel user en_1",
		"device commands --file x en_1",
		"apikey list --name ci",
		"apikey revoke --name ci key_1",
		"admin list --email root@a.example",
		"admin reset --role auditor ad_1",
		"push-cert show --out push.csr",
		"push-cert csr --cert cert.pem",
		"push-cert import --out push.csr --cert cert.pem",
	} {
		a := strings.Fields(args)
		path := strings.Join(a[:2], " ")
		r := runCLI(t, nil, "", f.vars(), a...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "pomona "+path+": flag provided but not defined") || !strings.Contains(r.stderr, "\nUsage: pomona "+path) {
			t.Errorf("pomona %s: exit %d\nstderr: %s", args, r.code, r.stderr)
		}
		if req := f.requests(); len(req) > 0 {
			t.Errorf("pomona %s called the API: %v", args, req)
		}
	}
	for _, tc := range []struct {
		args      string
		has, hasn []string
	}{
		{"device show --help", nil, []string{"-immediately", "-tenant", "-no-push", "-channel"}},
		{"device unenroll --help", []string{"-immediately"}, []string{"-tenant", "-no-push"}},
		{"device list --help", []string{"-tenant", "-status", "-limit"}, []string{"-immediately", "-file"}},
		{"apikey list --help", nil, []string{"-name"}},
		{"admin create --help", []string{"-email", "-role"}, nil},
		{"admin reset --help", nil, []string{"-email", "-role"}},
		{"push-cert show --help", nil, []string{"-out", "-cert", "-p12"}},
		{"push-cert csr --help", []string{"-out"}, []string{"-cert", "-p12"}},
	} {
		r := mustOK(t, runCLI(t, nil, "", nil, strings.Fields(tc.args)...))
		lists := func(flag string) bool {
			return regexp.MustCompile(`(?m)^  ` + flag + `( |$)`).MatchString(r.stdout)
		}
		for _, s := range tc.has {
			if !lists(s) {
				t.Errorf("pomona %s does not list %s:\n%s", tc.args, s, r.stdout)
			}
		}
		for _, s := range tc.hasn {
			if lists(s) {
				t.Errorf("pomona %s lists another subcommand's %s:\n%s", tc.args, s, r.stdout)
			}
		}
	}
}

// TestExtraArgumentsRefused: a command that takes no positional
// arguments refuses them (exit 2, usage) before it calls the API,
// as one that takes one refuses two.
func TestExtraArgumentsRefused(t *testing.T) {
	f := newFakeAPI(t)
	for _, args := range []string{
		"tenant list a b",
		"user list x",
		"apikey list x",
		"admin list x",
		"device list x",
		"push-cert show x",
		"push-cert csr x",
		"audit x",
		"version x",
		"tenant show a b",
		"device show en_1 en_2",
		"apikey create --name ci extra",
		"admin create --email root@a.example extra",
	} {
		a := strings.Fields(args)
		path := a[0]
		if len(a) > 2 && !strings.HasPrefix(a[1], "-") && a[0] != "audit" && a[0] != "version" {
			path += " " + a[1]
		}
		r := runCLI(t, nil, "", f.vars(), a...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "pomona "+path+": ") || !strings.Contains(r.stderr, "\nUsage: pomona "+path) {
			t.Errorf("pomona %s: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
		}
		if req := f.requests(); len(req) > 0 {
			t.Errorf("pomona %s called the API: %v", args, req)
		}
	}
}

// TestUsageErrorFormat: every mistake in a command line is told the same
// way: "pomona <command> <subcommand>: <what>", the usage line once, and
// where the flags are listed.
func TestUsageErrorFormat(t *testing.T) {
	f := newFakeAPI(t)
	for _, tc := range []struct{ args, path, what string }{
		{"tenant show", "tenant show", "give one tenant id or domain"},
		{"tenant add Example", "tenant add", "give at least one --domain"},
		{"tenant list --nope", "tenant list", "flag provided but not defined: -nope"},
		{"tenant branding", "tenant branding", "give one tenant id or domain"},
		{"user show", "user show", "give one user id or email"},
		{"user update amy@a.example", "user update", "nothing to change"},
		{"user set-password amy@a.example --password-stdin --generate-password", "user set-password", "--password-stdin and --generate-password exclude each other"},
		{"device show", "device show", "give the device id or EnrollmentID"},
		{"device command en_1", "device command", "give the device and the command"},
		{"apikey revoke", "apikey revoke", "give the id of the key"},
		{"apikey create", "apikey create", "give the key a --name"},
		{"admin reset", "admin reset", "give the id of the account"},
		{"push-cert import", "push-cert import", "give --cert (and --key) or --p12"},
		{"sim enroll", "sim enroll", "give --user"},
		{"store migrate", "store migrate", "give --from and --to"},
		{"serve --log-level loud", "serve", "--log-level"},
		{"discovery snippet", "discovery snippet", "give the kind"},
	} {
		r := runCLI(t, nil, "", f.vars(), strings.Fields(tc.args)...)
		want := "pomona " + tc.path + ": " + tc.what
		if r.code != 2 || !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "Usage: pomona "+tc.path) != 1 ||
			!strings.HasSuffix(r.stderr, "Run `pomona "+tc.path+" --help` for its flags.\n") || r.stdout != "" {
			t.Errorf("pomona %s: exit %d, want stderr starting %q\nstderr: %s", tc.args, r.code, want, r.stderr)
		}
	}
}

// TestJSONResults: every API command that accepts --json prints one JSON
// object with it, and text without it.
func TestJSONResults(t *testing.T) {
	f := newFakeAPI(t)
	for _, tc := range []struct {
		args string
		key  string // a key of the JSON object
	}{
		{"user set-password amy@a.example --generate-password", "password"},
		{"user reset-2fa amy@a.example", "second_factor"},
		{"user reauthenticate amy@a.example", "email"},
		{"user delete amy@a.example", "devices_unenrolled"},
		{"tenant delete a.example", "action"},
		{"apikey revoke key_1", "action"},
		{`device command en_1 {"request_type":"ProfileList"}`, "command_uuid"},
		{"device unenroll en_1", "command_uuid"},
		{"device show en_1", "inventory"},
		{"device push en_1", "pushes"},
		{"push-cert csr", "csr"},
	} {
		args := strings.Fields(tc.args)
		text := mustOK(t, runCLI(t, nil, "", f.vars(), args...)).stdout
		if json.Valid([]byte(text)) || strings.HasPrefix(text, "{") {
			t.Errorf("pomona %s without --json printed JSON:\n%s", tc.args, text)
		}
		r := mustOK(t, runCLI(t, nil, "", f.vars(), append(args, "--json")...))
		var m map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m[tc.key] == nil {
			t.Errorf("pomona %s --json: %v, no %q:\n%s", tc.args, err, tc.key, r.stdout)
		}
		if tc.key == "password" {
			pw, _ := m["password"].(string)
			if len(pw) != 24 || strings.Trim(pw, "abcdefghijklmnopqrstuvwxyz234567") != "" {
				t.Errorf("generated password %q: want 24 characters of lower-case base32", pw)
			}
		}
	}
	// The text forms say what happened.
	for args, want := range map[string]string{
		"device show en_1": "device_information",
		"device push en_1": "ch_2\trefused (APNs 410 Unregistered; the token is no longer valid)",
	} {
		if r := mustOK(t, runCLI(t, nil, "", f.vars(), strings.Fields(args)...)); !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("pomona %s:\n%s", args, r.stdout)
		}
	}
}

// TestAdminResetEscapesID: the account id is one path segment of the
// API's URL, whatever it holds (no path injection with / or ..).
func TestAdminResetEscapesID(t *testing.T) {
	f := newFakeAPI(t)
	for id, want := range map[string]string{
		"ad_1":             "POST /api/v1/admins/ad_1/reset",
		"../apikeys/key_1": "POST /api/v1/admins/..%2Fapikeys%2Fkey_1/reset",
		"a/b":              "POST /api/v1/admins/a%2Fb/reset",
		"..":               "POST /api/v1/admins/../reset",
	} {
		f.requests()
		mustOK(t, runCLI(t, nil, "", f.vars(), "admin", "reset", id))
		if got := f.requests(); len(got) != 1 || got[0] != want {
			t.Errorf("admin reset %q: requests %q, want %q", id, got, want)
		}
	}
}

// TestDeviceListPages: device list follows next_before to the end, or
// stops at --limit.
func TestDeviceListPages(t *testing.T) {
	f := newFakeAPI(t)
	for _, tc := range []struct {
		limit          string
		want, requests int
	}{{"", 2100, 3}, {"1500", 1500, 2}, {"10", 10, 1}} {
		args := []string{"device", "list", "--json"}
		if tc.limit != "" {
			args = append(args, "--limit", tc.limit)
		}
		f.requests()
		r := mustOK(t, runCLI(t, nil, "", f.vars(), args...))
		var out struct {
			Devices []struct {
				ID string `json:"id"`
			} `json:"devices"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, d := range out.Devices {
			seen[d.ID] = true
		}
		if len(out.Devices) != tc.want || len(seen) != tc.want {
			t.Errorf("--limit %q: %d devices (%d distinct), want %d", tc.limit, len(out.Devices), len(seen), tc.want)
		}
		if n := len(f.requests()); n != tc.requests {
			t.Errorf("--limit %q: %d requests, want %d", tc.limit, n, tc.requests)
		}
	}
}
