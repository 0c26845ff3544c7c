package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/server"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/totp"
)

// consoleClock lets a test use the next TOTP code at once: the console's
// clock runs ahead by a settable offset.
type consoleClock struct{ off atomic.Int64 }

func (c *consoleClock) now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *consoleClock) nextCode(secret []byte) string {
	c.off.Add(int64(totp.Period * time.Second))
	return totp.Code(secret, c.now())
}

func consoleWorld(t testing.TB) (*world, *consoleClock) {
	clk := &consoleClock{}
	w := newWorldWith(t, func(c *server.Config) {
		c.ConsoleClock = clk.now
		// The console's discovery check of example.com reaches this server.
		c.DiscoveryResolve = map[string]string{"example.com:443": c.Listen}
	})
	return w, clk
}

type consoleUser struct {
	t      testing.TB
	w      *world
	c      *http.Client
	email  string
	secret []byte
	csrf   string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (u *consoleUser) get(path string) (int, string) {
	u.t.Helper()
	resp, err := u.c.Get(u.w.e.URL + path)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindStringSubmatch(string(b)); m != nil {
		u.csrf = m[1]
	}
	return resp.StatusCode, string(b)
}

// post sends a form from the console's own origin with the session's token.
func (u *consoleUser) post(path string, form url.Values, hdr ...string) (int, string) {
	u.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", u.csrf)
	}
	req, _ := http.NewRequest("POST", u.w.e.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", u.w.e.URL)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := u.c.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindStringSubmatch(string(b)); m != nil {
		u.csrf = m[1]
	}
	return resp.StatusCode, string(b)
}

// newConsoleUser invites, sets up and signs in an account with role.
func newConsoleUser(t testing.TB, w *world, clk *consoleClock, email, role string) *consoleUser {
	t.Helper()
	ctx := context.Background()
	_, tok, err := w.e.Server.Admins.Invite(ctx, email, "", role)
	if err != nil {
		t.Fatal(err)
	}
	secret := totp.NewSecret()
	if _, err := w.e.Server.Admins.CompleteSetup(ctx, tok, "", "console password 1", secret, totp.Code(secret, clk.now()), "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: w.e.Client.Transport, Timeout: 30 * time.Second}
	u := &consoleUser{t: t, w: w, c: c, email: email, secret: secret}
	u.get("/console/login")
	code, body := u.post("/console/login", url.Values{"email": {email}, "password": {"console password 1"}, "code": {clk.nextCode(secret)}})
	if code != 200 || !strings.Contains(body, "Dashboard") {
		t.Fatalf("sign-in: %d %s", code, body)
	}
	return u
}

func TestConsoleSignInAndSessions(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e

	// Unauthenticated pages go to the sign-in page; the first owner's
	// link was created at start.
	jar, _ := cookiejar.New(nil)
	anon := &consoleUser{t: t, w: w, c: &http.Client{Jar: jar, Transport: e.Client.Transport}}
	code, body := anon.get("/console/devices")
	if code != 200 || !strings.Contains(body, "Sign in to Pomona") {
		t.Fatalf("anonymous: %d", code)
	}
	if !strings.Contains(e.Server.OwnerSetupURL(), "/console/setup?token=") {
		t.Fatalf("owner setup link %q", e.Server.OwnerSetupURL())
	}
	resp, _ := e.Client.Get(e.URL + "/console/")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("security headers: %v", resp.Header)
	}
	resp.Body.Close()

	// Wrong code: refused with a generic message.
	owner := newConsoleUser(t, w, clk, "root@ops.example", store.RoleOwner)
	anon.get("/console/login")
	code, body = anon.post("/console/login", url.Values{"email": {"root@ops.example"}, "password": {"console password 1"}, "code": {"000000"}})
	if code != 401 || !strings.Contains(body, "not right") {
		t.Fatalf("wrong code: %d", code)
	}
	// A sign-in form from another origin is refused.
	code, _ = anon.post("/console/login", url.Values{"email": {"root@ops.example"}}, "Origin", "https://evil.example")
	if code != 403 {
		t.Fatalf("cross-origin sign-in: %d", code)
	}

	// POSTs need the session's CSRF token and the console's origin.
	code, _ = owner.post("/console/tenants", url.Values{"csrf": {"forged"}, "name": {"X"}, "domains": {"x.example"}})
	if code != 403 {
		t.Fatalf("forged CSRF: %d", code)
	}
	code, _ = owner.post("/console/tenants", url.Values{"name": {"X"}, "domains": {"x.example"}}, "Origin", "https://evil.example")
	if code != 403 {
		t.Fatalf("cross-origin POST: %d", code)
	}
	if _, err := e.Server.Store.TenantByDomain(context.Background(), "x.example"); err == nil {
		t.Fatal("a refused POST created a tenant")
	}
	code, body = owner.post("/console/tenants", url.Values{"name": {"X Corp"}, "domains": {"x.example"}, "second_factor": {"on"}})
	if code != 200 || !strings.Contains(body, "Tenant X Corp created") {
		t.Fatalf("create tenant: %d %s", code, body)
	}

	// Roles: an auditor reads but cannot change; help desk may force a
	// re-authentication but not disable a user.
	auditor := newConsoleUser(t, w, clk, "audit@ops.example", store.RoleAuditor)
	if code, _ := auditor.get("/console/users"); code != 200 {
		t.Fatal("auditor cannot read")
	}
	code, _ = auditor.post("/console/tenants", url.Values{"name": {"Y"}, "domains": {"y.example"}})
	if code != 403 {
		t.Fatalf("auditor created a tenant: %d", code)
	}
	alice, _ := e.Server.Store.UserByEmail(context.Background(), "alice@example.com")
	help := newConsoleUser(t, w, clk, "help@ops.example", store.RoleHelpDesk)
	help.get("/console/users/" + alice.ID)
	if code, body := help.post("/console/users/"+alice.ID+"/reauthenticate", nil); code != 200 || !strings.Contains(body, "must sign in again") {
		t.Fatalf("help desk re-auth: %d", code)
	}
	if code, _ := help.post("/console/users/"+alice.ID+"/enabled", url.Values{"enabled": {"false"}}); code != 403 {
		t.Fatalf("help desk disabled a user: %d", code)
	}
	if u, _ := e.Server.Store.User(context.Background(), alice.ID); !u.Enabled || u.TokensNotBefore.IsZero() {
		t.Fatalf("alice %+v", u)
	}
	// Owners manage accounts; admins do not.
	adm := newConsoleUser(t, w, clk, "adm@ops.example", store.RoleAdmin)
	if code, _ := adm.post("/console/admins", url.Values{"email": {"x@ops.example"}, "role": {"owner"}}); code != 403 {
		t.Fatalf("admin invited an owner: %d", code)
	}
	owner.get("/console/admins")
	code, body = owner.post("/console/admins", url.Values{"email": {"new@ops.example"}, "role": {"auditor"}})
	if code != 200 || !strings.Contains(body, "/console/setup?token=") {
		t.Fatalf("invite: %d", code)
	}

	// Every change and refusal is in the audit log, with the console actor.
	es, err := e.Server.Store.Audit(context.Background(), store.AuditFilter{Actor: "console:auditor@ops.example", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	es, _ = e.Server.Store.Audit(context.Background(), store.AuditFilter{Actor: "console:audit@ops.example", Limit: 10})
	if len(es) == 0 || es[0].Status != 403 || es[0].Action != "POST /console/tenants" {
		t.Fatalf("audit %+v", es)
	}
	es, _ = e.Server.Store.Audit(context.Background(), store.AuditFilter{Actor: "console:root@ops.example", Action: "POST /console/tenants", Limit: 10})
	if len(es) != 3 {
		t.Fatalf("owner's tenant POSTs in the audit log: %+v", es)
	}

	// Sign-out ends the session server-side; idleness ends it too.
	owner.post("/console/logout", nil)
	if code, body := owner.get("/console/"); code != 200 || !strings.Contains(body, "Sign in to Pomona") {
		t.Fatal("session survived sign-out")
	}
	clk.off.Add(int64(31 * time.Minute))
	if _, body := adm.get("/console/"); !strings.Contains(body, "Sign in to Pomona") {
		t.Fatal("idle session survived")
	}
}

func TestConsoleFirstOwnerSetupLink(t *testing.T) {
	w, clk := consoleWorld(t)
	link := w.e.Server.OwnerSetupURL()
	jar, _ := cookiejar.New(nil)
	u := &consoleUser{t: t, w: w, c: &http.Client{Jar: jar, Transport: w.e.Client.Transport}}
	path := strings.TrimPrefix(link, w.e.URL)
	code, body := u.get(path)
	if code != 200 || !strings.Contains(body, "First owner") {
		t.Fatalf("setup page: %d", code)
	}
	secretText := regexp.MustCompile(`id="secret"[^>]*>([A-Z2-7]+)<`).FindStringSubmatch(body)
	sealed := regexp.MustCompile(`name="sealed" value="([^"]+)"`).FindStringSubmatch(body)
	if secretText == nil || sealed == nil {
		t.Fatal("no TOTP secret on the setup page")
	}
	secret, _ := totp.Decode(secretText[1])
	token := strings.TrimPrefix(path, "/console/setup?token=")
	form := url.Values{"token": {token}, "sealed": {sealed[1]}, "email": {"boss@ops.example"}, "password": {"the owner password"},
		"password2": {"the owner password"}, "code": {totp.Code(secret, clk.now())}}
	// A mistyped code or a second password that differs keeps the key
	// already shown (it may be in the app by now) and the email: the next
	// try needs no new scan.
	for _, change := range []url.Values{{"code": {"000000"}}, {"password2": {"the owner passw0rd"}}} {
		retry := url.Values{}
		for k, v := range form {
			retry[k] = v
		}
		for k, v := range change {
			retry[k] = v
		}
		if totp.Code(secret, clk.now()) == "000000" {
			continue
		}
		code, body := u.post("/console/setup", retry)
		if code != 422 || !strings.Contains(body, `id="secret" aria-label="Key for your authenticator app">`+secretText[1]+`<`) ||
			!strings.Contains(body, `value="boss@ops.example"`) {
			t.Fatalf("setup with %v: %d, want 422 with the same key and the email kept: %.2000s", change, code, body)
		}
	}
	// A tampered sealed secret is refused.
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("sealed", sealed[1][:len(sealed[1])-4]+"AAAA")
	if code, _ := u.post("/console/setup", bad); code != 400 {
		t.Fatalf("tampered secret: %d", code)
	}
	code, body = u.post("/console/setup", form)
	if code != 200 || !strings.Contains(body, "Your account is ready") {
		t.Fatalf("setup: %d %s", code, body)
	}
	// The link works once.
	if code, _ := u.get(path); code != 404 {
		t.Fatalf("reused link: %d", code)
	}
	u.get("/console/login")
	code, body = u.post("/console/login", url.Values{"email": {"boss@ops.example"}, "password": {"the owner password"}, "code": {clk.nextCode(secret)}})
	if code != 200 || !strings.Contains(body, "boss@ops.example · Owner") {
		t.Fatalf("owner sign-in: %d", code)
	}
}

// Every console page renders for every role without a server error.
func TestConsolePagesRender(t *testing.T) {
	w, clk := consoleWorld(t)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	dev, _ := w.e.Server.Store.EnrollmentByAppleID(context.Background(), d.MDM.EnrollmentID)
	alice, _ := w.e.Server.Store.UserByEmail(context.Background(), "alice@example.com")
	for _, role := range []string{store.RoleOwner, store.RoleAuditor} {
		u := newConsoleUser(t, w, clk, role+"@ops.example", role)
		for _, p := range []string{"/console/", "/console/tenants", "/console/tenants/" + w.tenant, "/console/users", "/console/users?q=ali",
			"/console/users/" + alice.ID, "/console/devices", "/console/devices?status=all&platform=iOS", "/console/devices/" + dev.ID,
			"/console/devices/" + dev.ID + "?command=DeviceInformation", "/console/push", "/console/apikeys", "/console/webhooks",
			"/console/audit", "/console/admins"} {
			code, body := u.get(p)
			if code != 200 || !strings.Contains(body, "</html>") || !strings.Contains(body, "<h1") {
				t.Errorf("%s %s: %d %.300s", role, p, code, body)
			}
			if role == store.RoleAuditor && strings.Contains(body, `action="/console/devices/`+dev.ID+`/commands"`) {
				t.Errorf("auditor is offered the command form on %s", p)
			}
		}
		if code, _ := u.get("/console/devices/en_nope"); code != 404 {
			t.Errorf("unknown device: %d", code)
		}
	}
}

// A new server has no push certificate: the page the dashboard sends the
// administrator to ("Add the push certificate") says so and offers the
// CSR and the upload. It was blank: its view was an empty map, which the
// template's {{with .Data}} skipped.
func TestConsolePushPageWithoutCertificate(t *testing.T) {
	clk := &consoleClock{}
	w := newWorldOpts(t, false, func(c *server.Config) { c.ConsoleClock = clk.now })
	o := newConsoleUser(t, w, clk, "root@ops.example", store.RoleOwner)
	if _, body := o.get("/console/"); !strings.Contains(body, `href="/console/push"`) {
		t.Fatalf("the dashboard of a server without a push certificate does not link to its page: %.2000s", body)
	}
	code, body := o.get("/console/push")
	for _, want := range []string{"<h1>Push certificate</h1>", "No push certificate yet", `action="/console/push/csr"`, `action="/console/push/certificate"`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("push certificate page without a certificate: %d, no %q in %.1500s", code, want, body)
		}
	}
}

// The users' password fields say the rule the directory enforces: they
// said "at least 12 characters" (and the user page's field refused a
// valid password of 8 to 11 in the browser) while the rule is 8.
func TestConsolePasswordRuleShown(t *testing.T) {
	w, clk := consoleWorld(t)
	o := newConsoleUser(t, w, clk, "root@ops.example", store.RoleOwner)
	alice, err := w.e.Server.Store.UserByEmail(context.Background(), "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	rule := fmt.Sprintf("password (at least %d characters)", directory.MinPassword)
	attr := fmt.Sprintf(`minlength="%d"`, directory.MinPassword)
	for _, p := range []string{"/console/users", "/console/users/" + alice.ID} {
		if _, body := o.get(p); !strings.Contains(body, rule) || !strings.Contains(body, attr) || strings.Contains(body, "at least 12") {
			t.Errorf("%s does not say the password rule (%q, %s)", p, rule, attr)
		}
	}
}

// The device list says whose each device is (a user enrollment has no
// device name: the list was a column of en_… ids) and filters by email.
func TestConsoleDevicesShowTheirUser(t *testing.T) {
	w, clk := consoleWorld(t)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	dev, _ := w.e.Server.Store.EnrollmentByAppleID(context.Background(), d.MDM.EnrollmentID)
	o := newConsoleUser(t, w, clk, "root@ops.example", store.RoleOwner)
	if _, body := o.get("/console/devices"); !strings.Contains(body, `<a href="/console/users/`+dev.UserID+`">alice@example.com</a>`) {
		t.Errorf("the device list does not name the device's user: %.3000s", body)
	}
	if _, body := o.get("/console/devices?user=ALICE@example.com"); !strings.Contains(body, dev.ID) {
		t.Error("filtered by its user's email, the device is not listed")
	}
	if _, body := o.get("/console/devices?user=bob@example.com"); strings.Contains(body, dev.ID) || !strings.Contains(body, "No devices match") {
		t.Error("filtered by another user's email, the device is listed")
	}
	if code, body := o.get("/console/devices?user=nobody@example.com"); code != 200 || !strings.Contains(body, "No user has the email nobody@example.com") {
		t.Errorf("an unknown email: %d %.2000s", code, body)
	}
}

// postMultipart sends a multipart form (file uploads) like a browser.
func (u *consoleUser) postMultipart(path string, fields map[string]string, files map[string][]byte) (int, string) {
	u.t.Helper()
	return u.postMultipartFrom("", path, fields, files)
}

// postMultipartFrom is postMultipart from the page referer ("": none).
func (u *consoleUser) postMultipartFrom(referer, path string, fields map[string]string, files map[string][]byte) (int, string) {
	u.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fields["csrf"] = u.csrf
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for k, v := range files {
		fw, _ := mw.CreateFormFile(k, k+".bin")
		fw.Write(v)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", u.w.e.URL+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", u.w.e.URL)
	if referer != "" {
		req.Header.Set("Referer", referer)
	}
	resp, err := u.c.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindStringSubmatch(string(b)); m != nil {
		u.csrf = m[1]
	}
	return resp.StatusCode, string(b)
}

func TestConsoleActions(t *testing.T) {
	w, clk := consoleWorld(t)
	ctx := context.Background()
	st := w.e.Server.Store
	o := newConsoleUser(t, w, clk, "root@ops.example", store.RoleOwner)

	// API keys: shown once, work, revoke.
	o.get("/console/apikeys")
	code, body := o.post("/console/apikeys", url.Values{"name": {"ci"}})
	key := regexp.MustCompile(`id="new-key">(pomona_[^<]+)<`).FindStringSubmatch(body)
	if code != 200 || key == nil {
		t.Fatalf("new key: %d", code)
	}
	mustStatus(t, do(t, w.e, "GET", "/api/v1/server", nil, key[1]), 200)
	if _, body := o.get("/console/apikeys"); strings.Contains(body, key[1]) {
		t.Fatal("the key is shown again")
	}
	id := strings.Split(strings.TrimPrefix(key[1], "pomona_"), "_")[0]
	o.post("/console/apikeys/"+id+"/revoke", nil)
	mustStatus(t, do(t, w.e, "GET", "/api/v1/server", nil, key[1]), 401)

	// Webhooks: secret shown once; bad URL refused with the reason.
	o.get("/console/webhooks")
	if code, body := o.post("/console/webhooks", url.Values{"url": {"https://hooks.example/p"}, "events": {"command.result"}}); code != 200 || !strings.Contains(body, "signing secret") {
		t.Fatalf("webhook: %d", code)
	}
	if code, body := o.post("/console/webhooks", url.Values{"url": {"ftp://x"}}); code != 200 || !strings.Contains(body, "absolute http(s) URL") {
		t.Fatalf("bad webhook: %d %s", code, body)
	}
	if hs, _ := st.Webhooks(ctx); len(hs) != 1 || hs[0].Events[0] != "command.result" {
		t.Fatalf("webhooks %+v", hs)
	}

	// CSV import: good rows created, bad rows listed with their line.
	o.get("/console/users")
	csv := "email,name,password\nnew1@example.com,New One,a long password 1\nnobody@unknown.example,X,\nnew2@example.com,New Two,\n"
	code, body = o.postMultipart("/console/users/import", map[string]string{"tenant": ""}, map[string][]byte{"csv": []byte(csv)})
	if code != 200 || !strings.Contains(body, "<strong>2 users</strong> created") || !strings.Contains(body, "<td>3</td>") {
		t.Fatalf("import: %d %s", code, body)
	}

	// Push certificate: a CSR keeps its key on the server; a bad upload is refused.
	o.get("/console/push")
	if code, body := o.post("/console/push/csr", nil); code != 200 || !strings.Contains(body, "BEGIN CERTIFICATE REQUEST") {
		t.Fatalf("csr: %d", code)
	}
	if code, body := o.postMultipart("/console/push/certificate", map[string]string{}, map[string][]byte{"certificate": []byte("not a cert")}); code != 200 || !strings.Contains(body, "cannot be used") {
		t.Fatalf("bad cert: %d %s", code, body)
	}

	// Unenroll sends RemoveProfile; "immediately" forgets the device at once.
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	dev, _ := st.EnrollmentByAppleID(ctx, d.MDM.EnrollmentID)
	o.get("/console/devices/" + dev.ID)
	if code, body := o.post("/console/devices/"+dev.ID+"/unenroll", url.Values{"immediately": {"on"}}); code != 200 || !strings.Contains(body, "Unenrollment requested") {
		t.Fatalf("unenroll: %d", code)
	}
	if got, _ := st.Enrollment(ctx, dev.ID); got.Status != store.EnrollmentUnenrolled {
		t.Fatalf("status %s", got.Status)
	}
	chs, _ := st.Channels(ctx, dev.ID)
	qs, _ := st.QueuedCommands(ctx, chs[0].ID, 10)
	if len(qs) != 1 || qs[0].RequestType != "RemoveProfile" {
		t.Fatalf("queue %+v", qs)
	}

	// Tenants: deleting needs the name typed, and no users.
	o.get("/console/tenants/" + w.tenant)
	if code, body := o.post("/console/tenants/"+w.tenant+"/delete", url.Values{"confirm": {"wrong"}}); code != 200 || !strings.Contains(body, "Type the tenant") {
		t.Fatalf("delete: %d", code)
	}
	if _, err := st.Tenant(ctx, w.tenant); err != nil {
		t.Fatal("tenant deleted without confirmation")
	}
}
