package cli_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/cli"
	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/pki"
)

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs `pomona args...` against e with the environment vars given.
func runCLI(t *testing.T, e *testenv.Env, stdin string, vars map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{}
	if e != nil {
		env = map[string]string{"POMONA_SERVER": e.URL, "POMONA_API_KEY": e.APIKey, "POMONA_CA_FILE": e.CAFile}
	}
	for k, v := range vars {
		env[k] = v
	}
	code := cli.Main(&cli.Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }, Ctx: context.Background(),
	}, args)
	return result{code, out.String(), errb.String()}
}

func mustOK(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return r
}

func TestUsageAndVersion(t *testing.T) {
	if r := runCLI(t, nil, "", nil); r.code != 2 || !strings.Contains(r.stderr, "serve") || r.stdout != "" {
		t.Fatalf("no args: %+v", r)
	}
	if r := runCLI(t, nil, "", nil, "frobnicate"); r.code != 2 || !strings.Contains(r.stderr, "unknown command") {
		t.Fatalf("unknown command: %+v", r)
	}
	if r := mustOK(t, runCLI(t, nil, "", nil, "version")); !strings.HasPrefix(r.stdout, "pomona ") {
		t.Fatal(r.stdout)
	}
	if r := runCLI(t, nil, "", nil, "tenant", "explode"); r.code != 2 {
		t.Fatalf("unknown subcommand: %+v", r)
	}
	if r := runCLI(t, nil, "", nil, "serve", "--log-level", "loud"); r.code != 2 || !strings.Contains(r.stderr, "--log-level") {
		t.Fatalf("bad flag value: %+v", r)
	}
	if r := runCLI(t, nil, "", map[string]string{"POMONA_LOG_FORMAT": "xml"}, "serve"); r.code != 2 || !strings.Contains(r.stderr, "--log-format") {
		t.Fatalf("env var is not read: %+v", r)
	}
}

func TestTenantAndUserCommands(t *testing.T) {
	e := testenv.Start(t)
	r := mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "Example Corp", "--domain", "example.com", "--domain", "corp.example.net"))
	if !strings.Contains(r.stdout, "corp.example.net, example.com") || !strings.Contains(r.stdout, "/enroll/tn_") {
		t.Fatal(r.stdout)
	}
	if r := runCLI(t, e, "", nil, "tenant", "add", "Dup", "--domain", "example.com"); r.code != 1 || !strings.Contains(r.stderr, "already belongs") {
		t.Fatalf("duplicate domain: %+v", r)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "tenant", "list", "--json"))
	var tl struct {
		Tenants []struct{ ID string } `json:"tenants"`
	}
	if json.Unmarshal([]byte(r.stdout), &tl) != nil || len(tl.Tenants) != 1 {
		t.Fatalf("tenant list --json: %s", r.stdout)
	}
	mustOK(t, runCLI(t, e, "", nil, "tenant", "update", "example.com", "--add-domain", "extra.example", "--second-factor=false", "--name", "Example"))
	r = mustOK(t, runCLI(t, e, "", nil, "tenant", "show", tl.Tenants[0].ID))
	if !strings.Contains(r.stdout, "extra.example") || !strings.Contains(r.stdout, "optional") || !strings.Contains(r.stdout, "Example") {
		t.Fatal(r.stdout)
	}

	// Users: password from stdin, generated, none.
	r = mustOK(t, runCLI(t, e, "s3cret-password\n", nil, "user", "add", "alice@example.com", "--name", "Alice", "--password-stdin"))
	if !strings.Contains(r.stdout, "password               set") {
		t.Fatal(r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "user", "add", "bob@corp.example.net", "--generate-password", "--managed-apple-id", "bob@appleid.example.net"))
	if !strings.Contains(r.stdout, "(shown once)") || !strings.Contains(r.stdout, "bob@appleid.example.net") {
		t.Fatal(r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "user", "add", "carol@example.com"))
	if !strings.Contains(r.stderr, "cannot sign in yet") {
		t.Fatalf("no note about the missing password: %s", r.stderr)
	}
	if r := runCLI(t, e, "short\n", nil, "user", "add", "dave@example.com", "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, "at least 8") {
		t.Fatalf("short password: %+v", r)
	}
	if r := runCLI(t, e, "", nil, "user", "add", "eve@nobody.example"); r.code != 1 || !strings.Contains(r.stderr, "no tenant owns the domain nobody.example") {
		t.Fatalf("unowned domain: %+v", r)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "user", "list", "--tenant", "example.com"))
	if strings.Count(r.stdout, "us_") != 3 || !strings.Contains(r.stdout, "never") {
		t.Fatalf("user list:\n%s", r.stdout)
	}
	mustOK(t, runCLI(t, e, "", nil, "user", "disable", "alice@example.com"))
	r = mustOK(t, runCLI(t, e, "", nil, "user", "show", "alice@example.com", "--json"))
	if !strings.Contains(r.stdout, `"enabled": false`) {
		t.Fatal(r.stdout)
	}
	mustOK(t, runCLI(t, e, "", nil, "user", "enable", "alice@example.com"))
	mustOK(t, runCLI(t, e, "another-password\n", nil, "user", "set-password", "carol@example.com", "--password-stdin"))
	r = mustOK(t, runCLI(t, e, "", nil, "user", "show", "carol@example.com"))
	if !strings.Contains(r.stdout, "password               set") {
		t.Fatal(r.stdout)
	}
	mustOK(t, runCLI(t, e, "", nil, "user", "reset-2fa", "carol@example.com"))
	mustOK(t, runCLI(t, e, "", nil, "user", "update", "carol@example.com", "--email", "carol@extra.example"))
	mustOK(t, runCLI(t, e, "", nil, "user", "delete", "carol@extra.example"))
	if r := runCLI(t, e, "", nil, "user", "show", "carol@extra.example"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("deleted user: %+v", r)
	}
	// A domain with users cannot be removed; the tenant cannot be deleted without --cascade.
	if r := runCLI(t, e, "", nil, "tenant", "update", "example.com", "--remove-domain", "corp.example.net"); r.code != 1 || !strings.Contains(r.stderr, "still has") {
		t.Fatalf("remove used domain: %+v", r)
	}
	if r := runCLI(t, e, "", nil, "tenant", "delete", "example.com"); r.code != 1 || !strings.Contains(r.stderr, "--cascade") || strings.Contains(r.stderr, "cascade=true") {
		t.Fatalf("delete tenant with users: %+v", r)
	}
	mustOK(t, runCLI(t, e, "", nil, "tenant", "delete", "example.com", "--cascade"))
}

func TestAPIKeyCommandsAndErrors(t *testing.T) {
	e := testenv.Start(t)
	r := mustOK(t, runCLI(t, e, "", nil, "apikey", "create", "--name", "automation"))
	var key string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "key ") {
			key = strings.TrimSpace(strings.TrimPrefix(l, "key"))
		}
	}
	if !strings.HasPrefix(key, "pomona_") {
		t.Fatalf("no key printed:\n%s", r.stdout)
	}
	mustOK(t, runCLI(t, e, "", map[string]string{"POMONA_API_KEY": key}, "tenant", "list"))
	r = mustOK(t, runCLI(t, e, "", nil, "apikey", "list"))
	if !strings.Contains(r.stdout, "automation") || !strings.Contains(r.stdout, "first-start") || strings.Contains(r.stdout, key) {
		t.Fatalf("apikey list:\n%s", r.stdout)
	}
	id := strings.Split(strings.TrimPrefix(key, "pomona_"), "_")[0]
	mustOK(t, runCLI(t, e, "", nil, "apikey", "revoke", id))
	r = runCLI(t, e, "", map[string]string{"POMONA_API_KEY": key}, "tenant", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "POMONA_API_KEY") {
		t.Fatalf("revoked key: %+v", r)
	}
	// Without the CA file the TLS error says what to do; a dead server too.
	r = runCLI(t, e, "", map[string]string{"POMONA_CA_FILE": "", "POMONA_DATA": t.TempDir()}, "tenant", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "--ca-file") {
		t.Fatalf("untrusted server: %+v", r)
	}
	r = runCLI(t, e, "", map[string]string{"POMONA_SERVER": "https://127.0.0.1:1"}, "tenant", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "pomona serve") {
		t.Fatalf("dead server: %+v", r)
	}
	// The data directory's ca.pem is found without --ca-file.
	mustOK(t, runCLI(t, e, "", map[string]string{"POMONA_CA_FILE": "", "POMONA_DATA": e.DataDir}, "tenant", "list"))
}

func TestUserImport(t *testing.T) {
	e := testenv.Start(t)
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example"))
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "B", "--domain", "b.example"))
	mustOK(t, runCLI(t, e, "already-there\n", nil, "user", "add", "exists@a.example", "--password-stdin"))

	var b strings.Builder
	b.WriteString("\ufeffEmail,name,managed_apple_id,password,tenant,enabled\n")
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, "user%02d@a.example,User %d,,password-%02d,,true\n", i, i, i)
	}
	b.WriteString("\n")                                          // blank line: skipped
	b.WriteString("bad-email,X,,password-xx,,\n")                // line 43
	b.WriteString("short@a.example,X,,short,,\n")                // 44
	b.WriteString("exists@a.example,X,,password-xx,,\n")         // 45
	b.WriteString("wrong@b.example,X,,password-xx,a.example,\n") // 46
	b.WriteString("maybe@a.example,X,,password-xx,,perhaps\n")   // 47
	b.WriteString("few@a.example,X\n")                           // 48
	b.WriteString("bee@b.example,Bee,bee@apple.example,,b.example,false\n")
	path := filepath.Join(t.TempDir(), "users.csv")
	os.WriteFile(path, []byte(b.String()), 0o600)
	failed := filepath.Join(t.TempDir(), "failed.csv")

	r := runCLI(t, e, "", nil, "user", "import", path, "--errors", failed)
	if r.code != 1 {
		t.Fatalf("import with bad rows exited %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"line 43 (bad-email):", "line 44 (short@a.example): password", "line 45 (exists@a.example): a user with email exists@a.example already exists",
		"line 46 (wrong@b.example): email: b.example is not one of the domains", "line 47 (maybe@a.example): enabled must be true or false",
		"line 48 (few@a.example): has 2 fields", "47 rows: 41 created, 0 skipped, 6 failed",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "47/47 rows done, 6 failed") {
		t.Errorf("no progress, or it does not count the failures:\n%s", r.stderr)
	}
	// The good rows are all there, the bad ones not at all.
	r = mustOK(t, runCLI(t, e, "", nil, "user", "list", "--json"))
	var ul struct {
		Users []struct {
			Email          string `json:"email"`
			ManagedAppleID string `json:"managed_apple_id"`
			PasswordSet    bool   `json:"password_set"`
		} `json:"users"`
	}
	json.Unmarshal([]byte(r.stdout), &ul)
	if len(ul.Users) != 42 {
		t.Fatalf("%d users after import, want 42", len(ul.Users))
	}
	for _, u := range ul.Users {
		if u.Email == "bee@b.example" && (u.ManagedAppleID != "bee@apple.example" || u.PasswordSet) {
			t.Fatalf("bee imported as %+v", u)
		}
		if strings.HasPrefix(u.Email, "user") && !u.PasswordSet {
			t.Fatalf("%s imported without its password", u.Email)
		}
	}
	// The failed rows file can be corrected and imported again.
	f, _ := os.Open(failed)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 7 || recs[0][6] != "error" {
		t.Fatalf("failed rows file: %v %v", recs, err)
	}
	if st, _ := os.Stat(failed); st.Mode().Perm() != 0o600 {
		t.Errorf("the failed rows (with passwords) are readable by others: %v", st.Mode())
	}
	fix := map[string]func(rec []string){
		"bad-email":        func(rec []string) { rec[0] = "fixed@a.example" },
		"short@a.example":  func(rec []string) { rec[3] = "long-enough-now" },
		"exists@a.example": func(rec []string) {}, // skipped on re-import
		"wrong@b.example":  func(rec []string) { rec[4] = "b.example" },
		"maybe@a.example":  func(rec []string) { rec[5] = "true" },
		"few@a.example":    func(rec []string) {},
	}
	for _, rec := range recs[1:] {
		fix[rec[0]](rec)
	}
	var fb strings.Builder
	cw := csv.NewWriter(&fb)
	cw.WriteAll(recs)
	os.WriteFile(failed, []byte(fb.String()), 0o600)
	r = mustOK(t, runCLI(t, e, "", nil, "user", "import", failed, "--skip-existing", "--errors", failed+".again"))
	if !strings.Contains(r.stdout, "6 rows: 5 created, 1 skipped, 0 failed") {
		t.Fatalf("re-import of the corrected failed rows:\n%s\n%s", r.stdout, r.stderr)
	}
	// Re-import of the original: what was created already exists.
	r = runCLI(t, e, "", nil, "user", "import", path, "--skip-existing")
	if !strings.Contains(r.stdout, "0 created, 42 skipped") {
		t.Fatalf("skip-existing:\n%s", r.stdout)
	}
	// Header problems stop before anything is sent.
	os.WriteFile(path, []byte("mail,name\nx@a.example,X\n"), 0o600)
	if r := runCLI(t, e, "", nil, "user", "import", path); r.code != 1 || !strings.Contains(r.stderr, `unknown column "mail"`) {
		t.Fatalf("bad header: %+v", r)
	}
	// Import from stdin, with a default tenant.
	r = mustOK(t, runCLI(t, e, "email\nstdin@b.example\n", nil, "user", "import", "-", "--tenant", "b.example"))
	if !strings.Contains(r.stdout, "1 created") {
		t.Fatal(r.stdout)
	}
}

func TestDiscoveryCommands(t *testing.T) {
	e := testenv.Start(t)
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "Company", "--domain", "company.example"))
	r := mustOK(t, runCLI(t, e, "", nil, "discovery", "snippet", "nginx", "--domain", "company.example"))
	if !strings.Contains(r.stdout, "return 302 "+e.URL+"/.well-known/com.apple.remotemanagement$is_args$args") {
		t.Fatal(r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "discovery", "snippet", "json", "--domain", "company.example"))
	var doc struct {
		Servers []struct{ Version, BaseURL string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || !strings.HasPrefix(doc.Servers[0].BaseURL, e.URL+"/enroll/tn_") {
		t.Fatalf("json snippet is not pure JSON: %v\n%s", err, r.stdout)
	}
	if r := runCLI(t, e, "", nil, "discovery", "snippet", "iis"); r.code != 1 || !strings.Contains(r.stderr, "unknown snippet kind") {
		t.Fatalf("%+v", r)
	}

	// A company web server, with a certificate from Pomona's CA, that
	// redirects as nginx would with the snippet, to the real Pomona.
	cert, key, _ := e.Server.CA.IssueServer([]string{"company.example"}, pki.ECDSAP256, time.Now())
	var target string
	company := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if target == "" {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusFound)
	}))
	company.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	company.StartTLS()
	defer company.Close()
	args := []string{"discovery", "check", "company.example", "--user", "alice+work@company.example",
		"--resolve", "company.example:443:" + company.Listener.Addr().String(), "--trust-ca", e.CAFile}

	r = runCLI(t, e, "", nil, args...)
	if r.code != 1 || !strings.Contains(r.stdout, "has no redirect") || !strings.Contains(r.stdout, "pomona discovery snippet") {
		t.Fatalf("missing redirect not reported: %+v", r)
	}
	target = e.URL
	r = mustOK(t, runCLI(t, e, "", nil, args...))
	if !strings.Contains(r.stdout, "Discovery works") || !strings.Contains(r.stdout, "1. GET https://company.example") || !strings.Contains(r.stdout, "2. GET "+e.URL) {
		t.Fatalf("good redirect:\n%s", r.stdout)
	}
	// The expected BaseURL comes from the server: a stale answer is caught.
	r = runCLI(t, e, "", nil, append(args, "--expect-base-url", "https://old.example/enroll")...)
	if r.code != 1 || !strings.Contains(r.stdout, "points at another server") {
		t.Fatalf("stale BaseURL: %+v", r)
	}
	r = mustOK(t, runCLI(t, e, "", nil, append(args, "--json")...))
	if !strings.Contains(r.stdout, `"hops"`) {
		t.Fatal(r.stdout)
	}
	if r := runCLI(t, e, "", nil, "discovery", "check", "not a domain"); r.code != 2 {
		t.Fatalf("%+v", r)
	}
}

func get(t *testing.T, e *testenv.Env, path string) string {
	t.Helper()
	resp, err := e.Client.Get(e.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestConsoleAdminCommands(t *testing.T) {
	e := testenv.Start(t)
	r := mustOK(t, runCLI(t, e, "", nil, "admin", "create", "--email", "Ops@Example.com", "--role", "helpdesk"))
	if !strings.Contains(r.stdout, e.URL+"/console/setup?token=") || !strings.Contains(r.stdout, "ops@example.com (helpdesk)") {
		t.Fatalf("create: %s", r.stdout)
	}
	if r := runCLI(t, e, "", nil, "admin", "create", "--email", "ops@example.com"); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("duplicate: %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, e, "", nil, "admin", "create", "--email", "x@example.com", "--role", "root"); r.code != 1 || !strings.Contains(r.stderr, "role") {
		t.Fatalf("bad role: %d %s", r.code, r.stderr)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "admin", "list"))
	// The first owner (no email yet, from the first start) and ops.
	if !strings.Contains(r.stdout, "ops@example.com") || strings.Count(r.stdout, "setup pending") != 2 {
		t.Fatalf("list: %s", r.stdout)
	}
	id := strings.Fields(strings.Split(r.stdout, "\n")[2])[0]
	if r := mustOK(t, runCLI(t, e, "", nil, "admin", "reset", id)); !strings.Contains(r.stdout, "/console/setup?token=") {
		t.Fatalf("reset: %s", r.stdout)
	}
}

func TestTenantBrandingCommand(t *testing.T) {
	e := testenv.Start(t)
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "Brand Co", "--domain", "brand.example"))
	dir := t.TempDir()
	m := image.NewRGBA(image.Rect(0, 0, 40, 20))
	var b bytes.Buffer
	png.Encode(&b, m)
	logo := filepath.Join(dir, "logo.png")
	os.WriteFile(logo, b.Bytes(), 0o600)
	svg := filepath.Join(dir, "logo.svg")
	os.WriteFile(svg, []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), 0o600)

	r := mustOK(t, runCLI(t, e, "", nil, "tenant", "branding", "brand.example", "--accent-color", "#0B5D1E",
		"--contact", "IT help desk: extension 4357", "--privacy-url", "https://brand.example/privacy", "--logo", logo))
	for _, want := range []string{"#0b5d1e", "extension 4357", "https://brand.example/privacy", "/login/tn_"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("branding output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Refusals name the flag and say why.
	if r := runCLI(t, e, "", nil, "tenant", "branding", "brand.example", "--accent-color", "#6cb4ff"); r.code != 1 ||
		!strings.Contains(r.stderr, "--accent-color") || !strings.Contains(r.stderr, "2.19:1") {
		t.Fatalf("light accent: %+v", r)
	}
	if r := runCLI(t, e, "", nil, "tenant", "branding", "brand.example", "--logo", svg); r.code != 2 || !strings.Contains(r.stderr, "SVG") {
		t.Fatalf("SVG logo: %+v", r)
	}
	// An empty value removes one item; the others stay.
	r = mustOK(t, runCLI(t, e, "", nil, "tenant", "branding", "brand.example", "--contact", "", "--remove-logo"))
	if strings.Contains(r.stdout, "4357") || strings.Contains(r.stdout, "/logo") || !strings.Contains(r.stdout, "#0b5d1e") {
		t.Fatalf("after removing:\n%s", r.stdout)
	}
	// Any API validation error names the command's flag, not the API field.
	if r := runCLI(t, e, "", nil, "user", "add", "x@brand.example", "--managed-apple-id", "not an address"); r.code != 1 ||
		!strings.Contains(r.stderr, "--managed-apple-id: ") || strings.Contains(r.stderr, "managed_apple_id") {
		t.Fatalf("field error: %+v", r)
	}
}
