package server_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/abm/abmstub"
	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/server"
)

// abmWorld is a world whose server talks to an ABM stand-in.
type abmWorld struct {
	*world
	stub *abmstub.Stub
	abm  *httptest.Server
	org  *abmstub.Org
}

func newABMWorld(t *testing.T, opts ...testenv.Option) *abmWorld {
	t.Helper()
	stub := abmstub.New()
	srv := httptest.NewServer(stub.Handler())
	t.Cleanup(srv.Close)
	w := newWorldWith(t, append([]testenv.Option{func(c *server.Config) { c.ABMURL = srv.URL }}, opts...)...)
	return &abmWorld{world: w, stub: stub, abm: srv, org: &abmstub.Org{Name: "Example Corp", ID: "1703", Domains: []string{"example.com"}}}
}

// newServerToken makes a server token for the tenant through the API and
// returns its id and the public-key certificate the API handed out.
func (w *abmWorld) newServerToken(t *testing.T, tenant, name string) (string, *x509.Certificate) {
	t.Helper()
	a := do(t, w.e, "POST", "/api/v1/abm/tokens", map[string]any{"tenant": tenant, "name": name}, w.e.APIKey)
	mustStatus(t, a, 201)
	v := a.json(t)
	if v["status"] != "waiting_for_token" {
		t.Fatalf("a new server token: %v", v)
	}
	blk, _ := pem.Decode([]byte(v["certificate"].(string)))
	if blk == nil {
		t.Fatalf("no certificate PEM: %v", v)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// Its download (the console's: abm_console_test) is the same PEM.
	id := v["id"].(string)
	dl := do(t, w.e, "GET", "/api/v1/abm/tokens/"+id+"/certificate", nil, w.e.APIKey)
	mustStatus(t, dl, 200)
	if string(dl.body) != v["certificate"] || dl.header.Get("Content-Type") != "application/x-pem-file" ||
		dl.header.Get("Content-Disposition") != `attachment; filename="pomona-abm-`+id+`.pem"` {
		t.Fatalf("the certificate's download: %v\n%s", dl.header, dl.body)
	}
	return id, cert
}

func (w *abmWorld) importToken(t *testing.T, id string, file []byte) answer {
	t.Helper()
	return do(t, w.e, "PUT", "/api/v1/abm/tokens/"+id+"/token", map[string]any{"server_token": base64.StdEncoding.EncodeToString(file)}, w.e.APIKey)
}

func (w *abmWorld) managedDevicesOnly() devicesim.ManagedDevicesOnly {
	return devicesim.ManagedDevicesOnly{Certificate: func(_ context.Context, uuid string) (*x509.Certificate, error) { return w.stub.Certificate(uuid) }}
}

// Issue 16, "Managed devices only": a simulated device stays enrolled with
// a tenant that has a server token (its GetToken com.apple.maid JWT
// verifies against the certificate ABM has), and unenrolls itself without
// one; a device enrolled before the token was imported gets the
// capability through a re-delivered profile; expired and foreign tokens
// are refused with their reason.
func TestManagedDevicesOnlyEndToEnd(t *testing.T) {
	w := newABMWorld(t)
	e, ctx := w.e, context.Background()

	// Enrolled before the tenant has a server token: no capability.
	early := enrolledDevice(t, w.world, "iPhone", "alice@example.com", "alice-password")
	if strings.Contains(strings.Join(early.Profile.Capabilities, " "), "com.apple.mdm.token") {
		t.Fatalf("capability advertised without a server token: %v", early.Profile.Capabilities)
	}
	if _, err := early.GetToken(ctx, abm.ServiceTypeMAID); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("GetToken without a server token: %v", err)
	}

	id, cert := w.newServerToken(t, "example.com", "Main")
	uuid := w.stub.AddServer(w.org, "Pomona MDM")

	// Refusals with their reason: another key's token, an expired one.
	otherID, otherCert := w.newServerToken(t, w.tenant, "Other")
	foreign, _ := w.stub.Token(uuid, otherCert, time.Now().Add(365*24*time.Hour))
	a := w.importToken(t, id, foreign)
	if a.status != 422 || a.json(t)["code"] != "abm_token_foreign" || !strings.Contains(a.json(t)["error"].(string), "encrypted to another public key") {
		t.Fatalf("foreign token: %d %s", a.status, a.body)
	}
	expired, _ := w.stub.Token(uuid, cert, time.Now().Add(-24*time.Hour))
	a = w.importToken(t, id, expired)
	if a.status != 422 || a.json(t)["code"] != "abm_token_expired" || !strings.Contains(a.json(t)["error"].(string), "expired on") {
		t.Fatalf("expired token: %d %s", a.status, a.body)
	}
	if a := w.importToken(t, id, []byte("not a token")); a.status != 400 || a.json(t)["code"] != "abm_token_invalid" {
		t.Fatalf("garbage: %d %s", a.status, a.body)
	}
	mustStatus(t, do(t, e, "DELETE", "/api/v1/abm/tokens/"+otherID, nil, e.APIKey), 204)

	file, err := w.stub.Token(uuid, cert, time.Now().Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	a = w.importToken(t, id, file)
	mustStatus(t, a, 200)
	v := a.json(t)
	if v["status"] != "active" || v["server_uuid"] != uuid || v["org_name"] != "Example Corp" || v["server_name"] != "Pomona MDM" || v["days_left"].(float64) < 360 {
		t.Fatalf("imported token: %v", v)
	}

	// The early device gets its profile again with the capability.
	var cmd *devicesim.ReceivedCommand
	deadline := time.Now().Add(10 * time.Second)
	for cmd == nil && time.Now().Before(deadline) {
		if cmd, err = early.Poll(ctx, nil, false); err != nil {
			t.Fatal(err)
		}
		if cmd == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if cmd == nil || cmd.RequestType() != "InstallProfile" {
		t.Fatalf("no re-delivered profile: %+v", cmd)
	}
	ans := early.Process(ctx, cmd)
	if ans["Status"] != "Acknowledged" {
		t.Fatalf("re-delivered profile refused: %v", ans)
	}
	if _, err := early.Poll(ctx, ans, false); err != nil {
		t.Fatal(err)
	}
	if c, err := early.ManagedAppleAccountSignIn(ctx, w.managedDevicesOnly()); err != nil || c.Issuer != uuid {
		t.Fatalf("the early device after re-delivery: %+v %v", c, err)
	}
	// Re-delivery is done once: the device's profile advertises it now.
	if n, err := e.Server.RedeliverForGetToken(ctx, w.tenant); err != nil || n != 0 {
		t.Fatalf("a second re-delivery pass queued %d (%v)", n, err)
	}

	// Enrolled with the token: the capability from the start; the device
	// signs in, stays enrolled and keeps answering commands.
	d := enrolledDevice(t, w.world, "iPhone", "bob@example.com", "bob-password")
	c, err := d.ManagedAppleAccountSignIn(ctx, w.managedDevicesOnly())
	if err != nil || c.Issuer != uuid || c.ServiceType != abm.ServiceTypeMAID {
		t.Fatalf("sign-in with a server token: %+v %v", c, err)
	}
	roundTrip(t, w.world, d)
	if st := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID, nil, e.APIKey).json(t)["status"]; st != "enrolled" {
		t.Fatalf("device status %v", st)
	}
	// A Mac too (its device channel carries no bearer).
	mac := enrolledDevice(t, w.world, "Mac", "alice@example.com", "alice-password", early.TOTPSecret)
	if _, err := mac.ManagedAppleAccountSignIn(ctx, w.managedDevicesOnly()); err != nil {
		t.Fatalf("Mac: %v", err)
	}
	// Other service types are refused as Apple documents.
	if _, err := d.GetToken(ctx, "com.apple.watch.pairing"); err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "unsupported TokenServiceType") {
		t.Fatalf("watch pairing: %v", err)
	}

	// Another tenant without a server token: the device unenrolls itself.
	o := enrolledDevice(t, w.world, "iPhone", "olga@other.example", "olga-password")
	_, err = o.ManagedAppleAccountSignIn(ctx, w.managedDevicesOnly())
	var ue *devicesim.UnenrolledError
	if !errors.As(err, &ue) || !strings.Contains(ue.Reason, "com.apple.mdm.token") {
		t.Fatalf("tenant without a server token: %v", err)
	}
	if st := do(t, e, "GET", "/api/v1/devices/"+o.MDM.EnrollmentID, nil, e.APIKey).json(t)["status"]; st != "unenrolled" {
		t.Fatalf("self-unenrolled device status %v", st)
	}

	// The token removed: the next sign-in fails and the device leaves.
	mustStatus(t, do(t, e, "DELETE", "/api/v1/abm/tokens/"+id, nil, e.APIKey), 204)
	if _, err := d.ManagedAppleAccountSignIn(ctx, w.managedDevicesOnly()); !errors.As(err, &ue) || !strings.Contains(ue.Reason, "400") {
		t.Fatalf("after the token was removed: %v", err)
	}

	// Each answer is counted.
	resp, err := e.Client.Get(e.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`pomona_gettoken_answers_total{result="ok",service_type="com.apple.maid"} 3`,
		`pomona_gettoken_answers_total{result="unsupported",service_type="other"} 1`,
		`pomona_gettoken_answers_total{result="no-server-token",service_type="com.apple.maid"} 2`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Issue 16, fallback discovery: the URL registered with Apple answers like
// the company domain for the tenant's users (a device sent there by
// Apple's fallback gets the same enrollment server), like an unknown
// domain for anyone else; Apple's refusals come back in plain words.
func TestFallbackDiscoveryEndToEnd(t *testing.T) {
	w := newABMWorld(t)
	e, ctx := w.e, context.Background()
	id, cert := w.newServerToken(t, w.tenant, "Main")
	uuid := w.stub.AddServer(w.org, "Pomona MDM")
	file, _ := w.stub.Token(uuid, cert, time.Now().Add(365*24*time.Hour))
	mustStatus(t, w.importToken(t, id, file), 200)

	// Nothing registered yet.
	a := do(t, e, "GET", "/api/v1/abm/tokens/"+id+"/discovery", nil, e.APIKey)
	mustStatus(t, a, 200)
	if a.json(t)["registered"] != false {
		t.Fatalf("before: %s", a.body)
	}
	a = do(t, e, "POST", "/api/v1/abm/tokens/"+id+"/discovery", nil, e.APIKey)
	mustStatus(t, a, 200)
	want := e.URL + server.FallbackDiscoveryPath(w.tenant)
	if a.json(t)["discovery_url"] != want || w.stub.Server(uuid).DiscoveryURL != want {
		t.Fatalf("registered %v, Apple has %q, want %q", a.json(t)["discovery_url"], w.stub.Server(uuid).DiscoveryURL, want)
	}
	a = do(t, e, "GET", "/api/v1/abm/tokens/"+id+"/discovery", nil, e.APIKey)
	if v := a.json(t); v["registered"] != true || v["current"] != true || v["url"] != want {
		t.Fatalf("show: %s", a.body)
	}

	// The registered URL answers exactly like the domain's well-known.
	get := func(u string) (int, string) {
		resp, err := e.Client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	q := "?user-identifier=" + url.QueryEscape("bob@example.com") + "&model-family=iPhone"
	s1, b1 := get(e.URL + "/.well-known/com.apple.remotemanagement" + q)
	s2, b2 := get(want + q)
	if s1 != 200 || s1 != s2 || b1 != b2 {
		t.Fatalf("domain %d %s, fallback %d %s", s1, b1, s2, b2)
	}
	// Someone else's domain, an unknown domain and an unknown tenant get
	// the unknown-domain answer: no enumeration.
	_, unknown := get(e.URL + "/.well-known/com.apple.remotemanagement?user-identifier=x@nowhere.example&model-family=iPhone")
	for _, u := range []string{want + "?user-identifier=olga@other.example&model-family=iPhone", e.URL + server.FallbackDiscoveryPath("tn_nope") + q} {
		st, b := get(u)
		var body map[string]any
		json.Unmarshal([]byte(b), &body)
		if st != 403 || body["code"] != "com.apple.well-known.failed" || !strings.Contains(b, "doesn't use this server") {
			t.Fatalf("%s: %d %s", u, st, b)
		}
		if strings.Contains(unknown, "nowhere.example") && !strings.Contains(b, "domain") {
			t.Fatalf("%s answers differently from an unknown domain: %s", u, b)
		}
	}

	// A device whose company domain does not answer: Apple's fallback
	// sends it to the registered URL, and it enrolls like from the domain.
	d := w.device(t, "iPhone")
	d.SetResolve(nil)
	res, err := d.Enroll(ctx, w.abm.URL, devicesim.Credentials{User: "bob@example.com", Password: "bob-password"})
	if err != nil || !strings.HasPrefix(res.BaseURL, e.URL+"/enroll/"+w.tenant) {
		t.Fatalf("enrollment through fallback discovery: %+v %v", res, err)
	}

	// Re-assertion is idempotent and follows what Pomona wants.
	if n, err := e.Server.ABM.Reassert(ctx); err != nil || n != 1 || w.stub.Server(uuid).DiscoveryURL != want {
		t.Fatalf("reassert: %d %v", n, err)
	}

	// Apple's refusals in plain words.
	w.stub.Update(func() { w.org.NoFallbackDiscovery = true })
	a = do(t, e, "POST", "/api/v1/abm/tokens/"+id+"/discovery", nil, e.APIKey)
	if a.status != 422 || a.json(t)["code"] != "org_not_supported" || !strings.Contains(a.json(t)["error"].(string), "does not offer") {
		t.Fatalf("ORG_NOT_SUPPORTED: %d %s", a.status, a.body)
	}
	if v := do(t, e, "GET", "/api/v1/abm/tokens/"+id, nil, e.APIKey).json(t); !strings.Contains(v["discovery_error"].(string), "ORG_NOT_SUPPORTED") {
		t.Fatalf("the refusal is not kept for the console: %v", v)
	}
	w.stub.Update(func() { w.org.NoFallbackDiscovery = false })

	a = do(t, e, "DELETE", "/api/v1/abm/tokens/"+id+"/discovery", nil, e.APIKey)
	mustStatus(t, a, 200)
	if w.stub.Server(uuid).DiscoveryURL != "" {
		t.Fatal("still registered at Apple after remove")
	}
	if n, _ := e.Server.ABM.Reassert(ctx); n != 0 {
		t.Fatalf("a removed registration was re-asserted (%d)", n)
	}
}

// Apple refuses an http discovery URL (a server behind a TLS proxy with
// a wrong --public-url): the admin reads why.
func TestFallbackDiscoveryURLNotValid(t *testing.T) {
	w := newABMWorld(t, func(c *server.Config) { c.TLS, c.PublicURL = server.TLSOff, "http://"+c.Listen })
	e := w.e
	id, cert := w.newServerToken(t, w.tenant, "Main")
	uuid := w.stub.AddServer(w.org, "Pomona MDM")
	file, _ := w.stub.Token(uuid, cert, time.Now().Add(365*24*time.Hour))
	mustStatus(t, w.importToken(t, id, file), 200)
	a := do(t, e, "POST", "/api/v1/abm/tokens/"+id+"/discovery", nil, e.APIKey)
	if a.status != 422 || a.json(t)["code"] != "mdm_service_discovery_url_not_valid" || !strings.Contains(a.json(t)["error"].(string), "https") {
		t.Fatalf("not valid: %d %s", a.status, a.body)
	}
}
