package server_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/store"
)

const topic = "com.apple.mgmt.External.11111111-2222-3333-4444-555555555555"

// importPushCert installs a local (non-Apple) push certificate through the API.
func importPushCert(t testing.TB, e *testenv.Env) {
	t.Helper()
	ca, _ := pki.NewCA("local push CA", pki.ECDSAP256, time.Now())
	c, err := pushcert.NewLocal(topic, ca, time.Now().Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := pki.KeyPEM(c.Key)
	a := do(t, e, "PUT", "/api/v1/push-certificate", map[string]any{"certificate": string(pki.CertPEM(c.Cert)), "private_key": string(kp)}, e.APIKey)
	mustStatus(t, a, 200)
	if a.json(t)["topic"] != topic || a.json(t)["issued_by_apple"] != false {
		t.Fatalf("push cert: %s", a.body)
	}
}

type world struct {
	e      *testenv.Env
	tenant string
	pool   *x509.CertPool
}

func newWorld(t testing.TB, push bool) *world {
	return newWorldOpts(t, push)
}

// newWorldWith is newWorld with a push certificate and server options.
func newWorldWith(t testing.TB, opts ...testenv.Option) *world { return newWorldOpts(t, true, opts...) }

func newWorldOpts(t testing.TB, push bool, opts ...testenv.Option) *world {
	e := testenv.Start(t, opts...)
	w := &world{e: e, pool: x509.NewCertPool()}
	w.pool.AddCert(e.Server.CA.Cert)
	w.tenant = do(t, e, "POST", "/api/v1/tenants", map[string]any{"name": "Example Corp", "domains": []string{"example.com"}}, e.APIKey).json(t)["id"].(string)
	do(t, e, "POST", "/api/v1/tenants", map[string]any{"name": "Other", "domains": []string{"other.example"}}, e.APIKey)
	for _, u := range []map[string]any{
		{"email": "alice@example.com", "name": "Alice", "password": "alice-password", "managed_apple_id": "alice@appleid.example.com"},
		{"email": "bob@example.com", "password": "bob-password"},
		{"email": "olga@other.example", "password": "olga-password"},
	} {
		mustStatus(t, do(t, e, "POST", "/api/v1/users", u, e.APIKey), 201)
	}
	if push {
		importPushCert(t, e)
	}
	return w
}

func (w *world) device(t testing.TB, family string) *devicesim.Device {
	d, err := devicesim.New(devicesim.Options{ModelFamily: family, RootCAs: w.pool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestEnrollEndToEnd(t *testing.T) {
	w := newWorld(t, true)
	e := w.e
	ctx := context.Background()
	d := w.device(t, "iPhone")

	res, err := d.Enroll(ctx, e.URL, devicesim.Credentials{User: "alice@example.com", Password: "alice-password"})
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseURL != e.URL+"/enroll/"+w.tenant || res.LoginURL != e.URL+"/login/"+w.tenant {
		t.Fatalf("URLs: %s %s", res.BaseURL, res.LoginURL)
	}
	p := res.Profile
	if !p.Signed || p.Topic != topic || p.ServerURL != e.URL+"/mdm/connect" || p.CheckInURL != e.URL+"/mdm/checkin" ||
		p.ManagedAppleID != "alice@appleid.example.com" || !p.SignMessage || p.SCEPURL != e.URL+"/scep" {
		t.Fatalf("profile %+v", p)
	}
	if p.Signer.CheckSignatureFrom(e.Server.CA.Cert) != nil {
		t.Fatal("profile not signed by Pomona's profile signer")
	}
	if len(p.TrustedCAs) != 1 || !p.TrustedCAs[0].Equal(e.Server.CA.Cert) {
		t.Fatal("development TLS: the profile must carry Pomona's CA")
	}
	if d.TOTPSecret == nil {
		t.Fatal("the tenant requires a second factor: the sign-in should have set one up")
	}

	// The identity certificate chains to Pomona's CA and is tied to the enrollment.
	cert := res.IdentityCert
	if cert.CheckSignatureFrom(e.Server.CA.Cert) != nil {
		t.Fatal("identity not issued by the CA")
	}
	st := e.Server.Store
	ic, err := st.IdentityCert(ctx, pki.SerialHex(cert))
	if err != nil || ic.DeviceID != cert.Subject.CommonName {
		t.Fatalf("identity record %+v %v", ic, err)
	}
	en, err := st.Enrollment(ctx, ic.DeviceID)
	if err != nil || en.Status != store.EnrollmentPending || en.Product != "iPhone15,3" || en.Platform != catalog.IOS ||
		en.DeviceSignature != enroll.SigOther || en.TenantID != w.tenant || !strings.HasSuffix(en.ProfileID, w.tenant+".enrollment") {
		t.Fatalf("enrollment %+v %v", en, err)
	}
	if u, _ := st.UserByEmail(ctx, "alice@example.com"); u.TOTPConfirmedAt.IsZero() || u.LastSignInAt.IsZero() {
		t.Fatal("TOTP setup or sign-in time not recorded")
	}
	// The token is stored only as a hash.
	if _, err := st.AccessToken(ctx, opaquetoken.Hash(res.AccessToken)); err != nil {
		t.Fatal(err)
	}

	// The profile fetch does not consume the token: a retry works, and
	// replaces the pending enrollment of this sign-in (one sign-in, one
	// enrollment): same enrollment, while the earlier profile's challenge
	// and the certificate issued with it stop working.
	if _, err := d.FetchProfile(ctx); err != nil {
		t.Fatalf("retried profile fetch: %v", err)
	}
	if all, _ := st.Enrollments(ctx, store.EnrollmentFilter{UserID: en.UserID}); len(all) != 1 || all[0].ID != en.ID {
		t.Fatalf("a retried fetch made another enrollment: %+v", all)
	}
	// A used (and replaced) SCEP challenge is refused.
	d.Profile = p
	if _, err := d.SCEPEnroll(ctx); !errors.Is(err, devicesim.ErrRefused) {
		t.Fatalf("reused challenge: %v", err)
	}
	// A device whose first check-in failed retries without a new sign-in
	// while its access token is valid: the re-fetched profile carries a
	// fresh challenge, and the new identity checks in.
	if _, err := d.CheckProfile(d.ProfileRaw); err != nil {
		t.Fatal(err)
	}
	if d.Profile.SCEPChallenge == p.SCEPChallenge {
		t.Fatal("the re-fetched profile repeats the spent challenge")
	}
	retried, err := d.SCEPEnroll(ctx)
	if err != nil {
		t.Fatalf("SCEP with the re-fetched profile: %v", err)
	}
	if retried.Equal(cert) {
		t.Fatal("no new identity")
	}
	if retried.Subject.CommonName != en.ID {
		t.Fatalf("the retry made another enrollment: %s", retried.Subject.CommonName)
	}
	if rec, err := st.IdentityCert(ctx, pki.SerialHex(cert)); err != nil || rec.RevokedAt.IsZero() {
		t.Fatalf("the certificate of the replaced profile is not revoked: %+v %v", rec, err)
	}
	if err := d.Authenticate(ctx); err != nil {
		t.Fatalf("check-in after the retry: %v", err)
	}

	// A second device of the same person: the code page now (no setup), with
	// the secret the first sign-in set up.
	d2 := w.device(t, "iPad")
	if _, err := d2.Enroll(ctx, e.URL, devicesim.Credentials{User: "alice@example.com", Password: "alice-password", TOTPSecret: d.TOTPSecret}); err != nil {
		t.Fatalf("second device: %v", err)
	}
	m := get(t, e, "/metrics")
	for _, want := range []string{`pomona_enrollment_requests_total{result="challenge"} 2`, `pomona_enrollment_requests_total{result="profile"} 3`,
		`pomona_signin_total{result="success"} 2`, `pomona_scep_requests_total{operation="PKIOperation",result="issued"} 3`,
		`pomona_scep_requests_total{operation="PKIOperation",result="refused"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestEnrollMac(t *testing.T) {
	w := newWorld(t, true)
	// Without a second-factor requirement the sign-in ends after the password.
	mustStatus(t, do(t, w.e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, w.e.APIKey), 200)
	d := w.device(t, "Mac")
	res, err := d.Enroll(context.Background(), w.e.URL, devicesim.Credentials{User: "bob@example.com", Password: "bob-password"})
	if err != nil {
		t.Fatal(err)
	}
	if d.TOTPSecret != nil {
		t.Fatal("a second factor was set up although the tenant does not require one")
	}
	if !bytes.Contains(d.ProfileRaw, []byte("KeyIsExtractable")) || res.Profile.Capabilities[0] != "com.apple.mdm.per-user-connections" {
		t.Fatal("Mac profile lacks what macOS needs")
	}
	en, _ := w.e.Server.Store.Enrollment(context.Background(), res.IdentityCert.Subject.CommonName)
	if en.Platform != catalog.MacOS {
		t.Fatalf("platform %s", en.Platform)
	}
}

func TestRealIPhoneCaptureEnrolls(t *testing.T) {
	w := newWorld(t, true)
	body, err := os.ReadFile("../enroll/testdata/iphone12-1-ios15.7-enroll-body.p7s")
	if err != nil {
		t.Fatal(err)
	}
	base := w.e.URL + "/enroll/" + w.tenant
	// iOS 15 sent this body as form-urlencoded: the Content-Type must not matter.
	resp := post(t, w, base, body, "application/x-www-form-urlencoded", "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer method="apple-as-web", url="`+w.e.URL+`/login/`+w.tenant+`"` {
		t.Fatalf("first POST: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	d := w.device(t, "iPhone")
	d.LoginURL = w.e.URL + "/login/" + w.tenant
	tok, err := d.SignIn(context.Background(), devicesim.Credentials{User: "alice@example.com", Password: "alice-password"})
	if err != nil {
		t.Fatal(err)
	}
	resp = post(t, w, base, body, "application/pkcs7-signature", tok)
	if resp.StatusCode != 200 {
		t.Fatalf("profile: %d", resp.StatusCode)
	}
	// The enrollment records the real device's product and Apple signature.
	logs, _ := os.ReadFile(w.e.Logs.Name())
	if !strings.Contains(string(logs), "product=iPhone12,1") || !strings.Contains(string(logs), "device_signature=apple") {
		t.Fatal("the real capture was not recognised as an Apple-signed iPhone12,1")
	}
}

func post(t testing.TB, w *world, u string, body []byte, ct, tok string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", u, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := w.e.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestEnrollRefusals(t *testing.T) {
	ctx := context.Background()

	t.Run("no push certificate", func(t *testing.T) {
		w := newWorld(t, false)
		d := w.device(t, "iPhone")
		d.BaseURL = w.e.URL + "/enroll/" + w.tenant
		_, err := d.FirstPost(ctx)
		if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "push certificate") {
			t.Fatalf("%v", err)
		}
		logs, _ := os.ReadFile(w.e.Logs.Name())
		if !strings.Contains(string(logs), "pomona push-cert csr") {
			t.Fatal("the log does not tell the admin what to do")
		}
	})

	w := newWorld(t, true)
	base := w.e.URL + "/enroll/" + w.tenant
	t.Run("bad bodies", func(t *testing.T) {
		for name, tc := range map[string]struct {
			body   []byte
			status int
		}{
			"garbage":   {[]byte("hello"), 400},
			"empty":     {nil, 400},
			"oversized": {bytes.Repeat([]byte("x"), enroll.MaxBody+1), 413},
			"apple tv":  {[]byte(`<plist version="1.0"><dict><key>PRODUCT</key><string>AppleTV11,1</string></dict></plist>`), 403},
		} {
			if resp := post(t, w, base, tc.body, "application/pkcs7-signature", ""); resp.StatusCode != tc.status {
				t.Errorf("%s: %d, want %d", name, resp.StatusCode, tc.status)
			}
		}
		if resp := post(t, w, w.e.URL+"/enroll/tn_nope", []byte("x"), "", ""); resp.StatusCode != 404 {
			t.Errorf("unknown tenant: %d", resp.StatusCode)
		}
	})

	t.Run("bad tokens get 403, never another 401", func(t *testing.T) {
		d := w.device(t, "iPhone")
		d.BaseURL = base
		for _, tok := range []string{"not-a-token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
			d.AccessToken = tok
			if _, err := d.FetchProfile(ctx); err == nil || !strings.Contains(err.Error(), "403") {
				t.Fatalf("token %q: %v", tok, err)
			}
		}
	})

	t.Run("revoked token", func(t *testing.T) {
		d := w.device(t, "iPhone")
		if _, err := d.Discover(ctx, w.e.URL, "bob@example.com"); err != nil {
			t.Fatal(err)
		}
		d.FirstPost(ctx)
		if _, err := d.SignIn(ctx, devicesim.Credentials{User: "bob@example.com", Password: "bob-password"}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.FetchProfile(ctx); err != nil {
			t.Fatal(err)
		}
		mustStatus(t, do(t, w.e, "POST", "/api/v1/users/bob@example.com/reauthenticate", nil, w.e.APIKey), 200)
		if _, err := d.FetchProfile(ctx); err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("revoked token: %v", err)
		}
	})

	t.Run("sign-in refusals", func(t *testing.T) {
		d := w.device(t, "iPhone")
		d.LoginURL = w.e.URL + "/login/" + w.tenant
		var se *devicesim.SignInError
		// Wrong password: generic message; a user of another tenant: the same.
		for _, c := range []devicesim.Credentials{{User: "alice@example.com", Password: "wrong"}, {User: "olga@other.example", Password: "olga-password"},
			{User: "nobody@example.com", Password: "whatever"}} {
			_, err := d.SignIn(ctx, c)
			if !errors.As(err, &se) || se.Status != 401 || !strings.Contains(se.Shown, "account or password is not correct") {
				t.Fatalf("%s: %v", c.User, err)
			}
		}
		// Disabled user.
		mustStatus(t, do(t, w.e, "PATCH", "/api/v1/users/bob@example.com", map[string]any{"enabled": false}, w.e.APIKey), 200)
		if _, err := d.SignIn(ctx, devicesim.Credentials{User: "bob@example.com", Password: "bob-password"}); !errors.As(err, &se) || !strings.Contains(se.Shown, "can't enroll") {
			t.Fatalf("disabled: %v", err)
		}
		// Lock-out after repeated failures, with a clear message.
		for i := 0; i < 5; i++ {
			d.SignIn(ctx, devicesim.Credentials{User: "alice@example.com", Password: "wrong"})
		}
		if _, err := d.SignIn(ctx, devicesim.Credentials{User: "alice@example.com", Password: "alice-password"}); !errors.As(err, &se) || se.Status != 429 || !strings.Contains(se.Shown, "Try again in") {
			t.Fatalf("lock-out: %v", err)
		}
	})
}

func TestSignInCSRFAndCancel(t *testing.T) {
	w := newWorld(t, true)
	d := w.device(t, "iPhone")
	login := w.e.URL + "/login/" + w.tenant
	// Start a sign-in to get the cookie, then post without the CSRF token.
	resp, err := d.HTTP.Get(login + "?user-identifier=alice%40example.com")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, tc := range []struct {
		name   string
		form   url.Values
		origin string
		status int
	}{
		{"missing csrf", url.Values{"password": {"alice-password"}, "action": {"continue"}}, "", 403},
		{"wrong csrf", url.Values{"password": {"alice-password"}, "csrf": {"forged"}, "action": {"continue"}}, "", 403},
		{"foreign origin", url.Values{"password": {"alice-password"}, "csrf": {"x"}}, "https://evil.example", 403},
	} {
		req, _ := http.NewRequest("POST", login, strings.NewReader(tc.form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		resp, err := d.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d", tc.name, resp.StatusCode)
		}
	}
	// Without a sign-in cookie at all (a cross-site POST): refused too.
	plain := &http.Client{Transport: d.HTTP.Transport, CheckRedirect: d.HTTP.CheckRedirect}
	resp, err = plain.PostForm(login, url.Values{"password": {"alice-password"}, "identifier": {"alice@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("no cookie: %d", resp.StatusCode)
	}
	if u, _ := w.e.Server.Store.UserByEmail(context.Background(), "alice@example.com"); !u.LastSignInAt.IsZero() {
		t.Fatal("a refused POST signed the user in")
	}
}
