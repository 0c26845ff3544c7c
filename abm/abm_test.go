package abm_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/abm/abmstub"
	"github.com/pomona-mdm/pomona/store"
)

// The signature of Twitter's published OAuth 1.0a example (the parameters
// of its body moved into the query, which the base string treats alike).
func TestOAuthSignatureKnownAnswer(t *testing.T) {
	p := map[string]string{
		"oauth_consumer_key":     "xvz1evFS4wEEPTGEFPHBog",
		"oauth_nonce":            "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
		"oauth_signature_method": "HMAC-SHA1",
		"oauth_timestamp":        "1318622958",
		"oauth_token":            "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
		"oauth_version":          "1.0",
	}
	u := "https://api.twitter.com/1.1/statuses/update.json?include_entities=true&status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21"
	got, err := abm.OAuthSignature("POST", u, p, "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw", "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE")
	if err != nil || got != "hCtSmYh+iHYCEqBWrE7C7hYmtUk=" {
		t.Fatalf("signature %q %v", got, err)
	}
	h, err := abm.OAuthAuthorization("GET", "https://mdmenrollment.apple.com/session", &abm.OAuthTokens{ConsumerKey: "CK_1", ConsumerSecret: "CS", AccessToken: "AT_1", AccessSecret: "AS"}, time.Unix(1318622958, 0), "n o+nce")
	if err != nil {
		t.Fatal(err)
	}
	back, err := abm.ParseOAuthAuthorization(h)
	if err != nil || back["oauth_nonce"] != "n o+nce" || back["oauth_consumer_key"] != "CK_1" || back["oauth_token"] != "AT_1" || back["oauth_timestamp"] != "1318622958" {
		t.Fatalf("header %s → %v %v", h, back, err)
	}
	if want, _ := abm.OAuthSignature("GET", "https://mdmenrollment.apple.com/session", back, "CS", "AS"); want != back["oauth_signature"] {
		t.Fatalf("the header's signature does not verify")
	}
	if _, err := abm.ParseOAuthAuthorization(`Basic abc`); err == nil {
		t.Fatal("a Basic header parsed")
	}
}

type fixture struct {
	stub *abmstub.Stub
	srv  *httptest.Server
	uuid string
	kp   *abm.KeyPair
	file []byte
}

func newFixture(t *testing.T, org *abmstub.Org) *fixture {
	t.Helper()
	st := abmstub.New()
	srv := httptest.NewServer(st.Handler())
	t.Cleanup(srv.Close)
	u := st.AddServer(org, "Pomona")
	kp, err := abm.NewKeyPair("Pomona test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	file, err := st.Token(u, kp.Cert, time.Now().Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{stub: st, srv: srv, uuid: u, kp: kp, file: file}
}

// TestServerTokenImport: the .p7m decrypts with its key; another key's
// token, an expired one and garbage are refused with reasons.
func TestServerTokenImport(t *testing.T) {
	f := newFixture(t, &abmstub.Org{Name: "Example Corp", ID: "1234", Domains: []string{"example.com"}})
	tok, err := abm.DecryptServerToken(f.file, f.kp, time.Now())
	if err != nil || !strings.HasPrefix(tok.ConsumerKey, "CK_") || tok.AccessTokenExpiry.Before(time.Now()) {
		t.Fatalf("import: %+v %v", tok, err)
	}
	other, _ := abm.NewKeyPair("other", time.Now())
	if _, err := abm.DecryptServerToken(f.file, other, time.Now()); !errors.Is(err, abm.ErrForeignToken) || !strings.Contains(err.Error(), "another public key") {
		t.Fatalf("foreign: %v", err)
	}
	if _, err := abm.DecryptServerToken(f.file, f.kp, time.Now().Add(400*24*time.Hour)); !errors.Is(err, abm.ErrExpiredToken) || !strings.Contains(err.Error(), "download a new token") {
		t.Fatalf("expired: %v", err)
	}
	for name, in := range map[string][]byte{"empty": nil, "text": []byte("hello"), "pem cert": f.kp.CertPEM(),
		"mime not p7": []byte("Content-Type: text/plain\r\n\r\nhello"), "huge": make([]byte, abm.MaxServerToken+1)} {
		if _, err := abm.DecryptServerToken(in, f.kp, time.Now()); !errors.Is(err, abm.ErrBadToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestClientAgainstStandIn: a session is made once and reused, renewed
// after it ended, 503s are retried, and Apple's error codes come back in
// plain words.
func TestClientAgainstStandIn(t *testing.T) {
	org := &abmstub.Org{Name: "Example Corp", ID: "1234", Domains: []string{"example.com"}}
	f := newFixture(t, org)
	tok, err := abm.DecryptServerToken(f.file, f.kp, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := abm.NewClient(f.srv.URL, *tok, nil, 5*time.Second)
	c.HTTP.Transport.(*abm.Transport).Backoff = time.Millisecond
	ctx := context.Background()
	a, err := c.Account(ctx)
	if err != nil || a.ServerUUID != f.uuid || a.OrgName != "Example Corp" || a.ServerName != "Pomona" {
		t.Fatalf("account: %+v %v", a, err)
	}
	if _, err := c.DiscoveryURL(ctx); !abm.NotRegistered(err) {
		t.Fatalf("nothing registered: %v", err)
	}
	if err := c.SetDiscoveryURL(ctx, "https://mdm.example.net/abm/discovery/tn_1"); err != nil {
		t.Fatal(err)
	}
	if n := f.stub.Calls("GET /session"); n != 1 {
		t.Fatalf("%d sessions for three calls", n)
	}
	f.stub.EndSessions()
	p, err := c.DiscoveryURL(ctx)
	if err != nil || p.URL != "https://mdm.example.net/abm/discovery/tn_1" || p.LastUpdated == "" {
		t.Fatalf("after the session ended: %+v %v", p, err)
	}
	if n := f.stub.Calls("GET /session"); n != 2 {
		t.Fatalf("%d sessions, want a second one after the first ended", n)
	}
	f.stub.FailNext(503, 502)
	if err := c.SetDiscoveryURL(ctx, "https://mdm.example.net/abm/discovery/tn_1"); err != nil {
		t.Fatalf("after two 5xx: %v", err)
	}
	f.stub.FailNext(503, 503, 503)
	var ae *abm.APIError
	if err := c.RemoveDiscoveryURL(ctx); !errors.As(err, &ae) || ae.Status != 503 || !strings.Contains(err.Error(), "not available right now") {
		t.Fatalf("three 503s: %v", err)
	}
	for u, want := range map[string]string{"http://mdm.example.net/x": "MDM_SERVICE_DISCOVERY_URL_NOT_VALID", "": "MDM_SERVICE_DISCOVERY_URL_REQUIRED"} {
		err := c.SetDiscoveryURL(ctx, u)
		if !errors.As(err, &ae) || ae.Code != want || ae.Status != 400 || abm.Explain(ae.Code, 400) == "" {
			t.Fatalf("%q: %v", u, err)
		}
	}
	f.stub.Update(func() { org.NoFallbackDiscovery = true })
	if err := c.SetDiscoveryURL(ctx, "https://mdm.example.net/x"); !errors.As(err, &ae) || ae.Code != "ORG_NOT_SUPPORTED" || !strings.Contains(err.Error(), "does not offer") {
		t.Fatalf("org not supported: %v", err)
	}
	f.stub.Update(func() { org.NoFallbackDiscovery = false })
	if err := c.RemoveDiscoveryURL(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DiscoveryURL(ctx); !abm.NotRegistered(err) {
		t.Fatalf("after remove: %v", err)
	}

	// A newer download replaces the credentials: the old ones are refused
	// at /session with what to do.
	if _, err := f.stub.Token(f.uuid, f.kp.Cert, time.Now().Add(365*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.stub.EndSessions()
	if _, err := c.Account(ctx); !errors.Is(err, abm.ErrSessionRefused) || !strings.Contains(err.Error(), "download a new token") {
		t.Fatalf("superseded token: %v", err)
	}
}

// TestMAIDToken: the JWT verifies with the certificate's key and carries
// Apple's claims; another key, another service type and an old iat fail.
func TestMAIDToken(t *testing.T) {
	kp, _ := abm.NewKeyPair("maid", time.Now())
	now := time.Now()
	tok, jti, err := abm.MAIDToken(kp.Key, "SERVER-UUID", now)
	if err != nil || jti == "" || strings.Count(tok, ".") != 2 {
		t.Fatalf("token %q %v", tok, err)
	}
	c, err := abm.VerifyMAIDToken(tok, &kp.Key.PublicKey, now, time.Minute)
	if err != nil || c.Issuer != "SERVER-UUID" || c.ID != jti || c.ServiceType != abm.ServiceTypeMAID || c.IssuedAt.Unix() != now.Unix() {
		t.Fatalf("claims %+v %v", c, err)
	}
	_, jti2, _ := abm.MAIDToken(kp.Key, "SERVER-UUID", now)
	if jti2 == jti {
		t.Fatal("jti repeated")
	}
	other, _ := abm.NewKeyPair("other", now)
	if _, err := abm.VerifyMAIDToken(tok, &other.Key.PublicKey, now, time.Minute); err == nil {
		t.Fatal("verified with another key")
	}
	if _, err := abm.VerifyMAIDToken(tok, &kp.Key.PublicKey, now.Add(time.Hour), time.Minute); err == nil {
		t.Fatal("an hour-old iat verified")
	}
	if _, _, err := abm.MAIDToken(kp.Key, "", now); err == nil {
		t.Fatal("no server_uuid accepted")
	}
}

// TestProblems: warnings from 30 days before expiry, after expiry, for a
// token never imported and for a failed discovery registration; none for
// a token with a year left.
func TestProblems(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tok := func(id string, expiry time.Time, imported bool, discErr string) store.ABMServerToken {
		t := store.ABMServerToken{ID: id, Name: id, AccessTokenExpiry: expiry, DiscoveryError: discErr}
		if imported {
			t.TokenSealed = []byte("x")
		}
		return t
	}
	for _, c := range []struct {
		t    store.ABMServerToken
		want string
	}{
		{tok("fine", now.Add(365*24*time.Hour), true, ""), ""},
		{tok("soon", now.Add(10*24*time.Hour+time.Hour), true, ""), "expires in 10 days"},
		{tok("edge", now.Add(abm.WarnBefore-time.Hour), true, ""), "expires in 29 days"},
		{tok("gone", now.Add(-time.Hour), true, ""), "expired on 2026-11-30"},
		{tok("new", time.Time{}, false, ""), "has no token yet"},
		{tok("disc", now.Add(365*24*time.Hour), true, "ORG_NOT_SUPPORTED: nope"), "fallback discovery registration failed: ORG_NOT_SUPPORTED"},
	} {
		got := strings.Join(abm.Problems([]store.ABMServerToken{c.t}, now), "\n")
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.t.ID, got, c.want)
		}
	}
}

// BenchmarkMAIDToken is the cost of one GetToken answer's JWT (RS256 with
// an RSA-2048 key).
func BenchmarkMAIDToken(b *testing.B) {
	kp, _ := abm.NewKeyPair("bench", time.Now())
	now := time.Now()
	for b.Loop() {
		if _, _, err := abm.MAIDToken(kp.Key, "SERVER-UUID", now); err != nil {
			b.Fatal(err)
		}
	}
}
