package enroll_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/token"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"
)

func newCSR(t *testing.T) *x509.CertificateRequest {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev"}}, k)
	c, _ := x509.ParseCertificateRequest(der)
	return c
}

func TestIssuance(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	k, _ := seal.ParseKey(seal.NewKey())
	sealer, _ := seal.New(k)
	ca, _, _ := pki.LoadOrCreateCA(ctx, st, sealer, pki.ECDSAP256, time.Now())
	is, err := pki.LoadIssuer(ctx, st, sealer, ca, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	svc := &enroll.Service{Store: st, Issuer: is, ProfilePrefix: "net.example.pomona", Now: func() time.Time { return clock },
		URLs: enroll.URLs{ServerURL: "https://mdm.example.net/mdm/connect", CheckInURL: "https://mdm.example.net/mdm/checkin", SCEPURL: "https://mdm.example.net/scep"}}
	tn := &store.Tenant{ID: "tn_a", Name: "A", Domains: []string{"a.example"}, CreatedAt: clock, UpdatedAt: clock}
	st.CreateTenant(ctx, tn)
	u := &store.User{ID: "us_a", TenantID: tn.ID, Email: "amy@a.example", ManagedAppleID: "amy@a.example", Enabled: true, CreatedAt: clock, UpdatedAt: clock}
	st.CreateUser(ctx, u)
	body, _ := os.ReadFile("testdata/iphone12-1-ios15.7-enroll-body.p7s")
	parsed, _ := enroll.ParseBody(body)

	for _, tok := range []string{"x", "y", "z"} {
		if err := st.CreateAccessToken(ctx, &store.AccessToken{Hash: token.Hash(tok), UserID: u.ID, TenantID: tn.ID, CreatedAt: clock, ExpiresAt: clock.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	var last *store.Enrollment
	fetch := func(tok string) string {
		signed, e, err := svc.Profile(ctx, enroll.Request{Tenant: tn, User: u, TokenHash: token.Hash(tok), Body: parsed, Topic: "com.apple.mgmt.External.t"})
		if err != nil {
			t.Fatal(err)
		}
		last = e
		if e.Product != "iPhone12,1" || e.DeviceSignature != enroll.SigApple || e.Platform != enroll.IOS {
			t.Fatalf("enrollment %+v", e)
		}
		p7, _ := pkcs7.Parse(signed)
		var cfg struct {
			PayloadContent []map[string]any
		}
		plist.Unmarshal(p7.Content, &cfg)
		for _, p := range cfg.PayloadContent {
			if p["PayloadType"] == "com.apple.security.scep" {
				return p["PayloadContent"].(map[string]any)["Challenge"].(string)
			}
		}
		t.Fatal("no SCEP payload")
		return ""
	}
	ch := fetch("x")
	if _, _, err := svc.IssueForChallenge(ctx, newCSR(t), "unknown"); !errors.Is(err, enroll.ErrBadChallenge) {
		t.Fatalf("unknown: %v", err)
	}
	if _, _, err := svc.IssueForChallenge(ctx, newCSR(t), ""); !errors.Is(err, enroll.ErrNoChallenge) {
		t.Fatalf("empty: %v", err)
	}
	cert, e, err := svc.IssueForChallenge(ctx, newCSR(t), ch)
	if err != nil || cert.Subject.CommonName != e.ID || cert.CheckSignatureFrom(ca.Cert) != nil {
		t.Fatalf("issue: %v", err)
	}
	if cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || cert.NotAfter.Sub(cert.NotBefore) > pki.IdentityValidity+time.Hour {
		t.Fatal("identity certificate shape")
	}
	if _, _, err := svc.IssueForChallenge(ctx, newCSR(t), ch); !errors.Is(err, enroll.ErrChallengeUsed) {
		t.Fatalf("reused: %v", err)
	}
	// A CSR with a broken signature is refused and does not consume.
	ch2 := fetch("y")
	bad := newCSR(t)
	bad.Signature[0] ^= 0xff
	if _, _, err := svc.IssueForChallenge(ctx, bad, ch2); err == nil {
		t.Fatal("bad CSR signature accepted")
	}
	clock = clock.Add(enroll.DefaultChallengeTTL + time.Second)
	if _, _, err := svc.IssueForChallenge(ctx, newCSR(t), ch2); !errors.Is(err, enroll.ErrChallengeExpired) {
		t.Fatalf("expired: %v", err)
	}
	clock = time.Now()

	// Renewal: by the current identity only.
	ren, re, err := svc.Renew(ctx, newCSR(t), cert)
	if err != nil || re.ID != e.ID || ren.Subject.CommonName != e.ID {
		t.Fatalf("renew: %v", err)
	}
	other, _ := pki.NewCA("other", pki.ECDSAP256, time.Now())
	foreign, _ := other.IssueIdentity(newCSR(t), e.ID, "", time.Now())
	for name, c := range map[string]*x509.Certificate{"nil": nil, "foreign CA": foreign} {
		if _, _, err := svc.Renew(ctx, newCSR(t), c); !errors.Is(err, enroll.ErrBadRenewal) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A certificate from our CA that Pomona never recorded is refused too.
	unrecorded, _ := ca.IssueIdentity(newCSR(t), e.ID, "", time.Now())
	if _, _, err := svc.Renew(ctx, newCSR(t), unrecorded); !errors.Is(err, enroll.ErrBadRenewal) {
		t.Fatalf("unrecorded: %v", err)
	}

	// One sign-in, one enrollment: fetching again with token z replaces
	// its pending enrollment; the earlier challenge stops working and a
	// certificate issued for it is revoked (finding 9 of issue 11).
	chA := fetch("z")
	first := last
	certA, _, err := svc.IssueForChallenge(ctx, newCSR(t), chA)
	if err != nil {
		t.Fatal(err)
	}
	chB := fetch("z")
	chC := fetch("z")
	if last.ID != first.ID {
		t.Fatalf("a second pending enrollment %s for one sign-in (first %s)", last.ID, first.ID)
	}
	if _, _, err := svc.IssueForChallenge(ctx, newCSR(t), chB); !errors.Is(err, enroll.ErrBadChallenge) {
		t.Fatalf("replaced challenge: %v", err)
	}
	if ic, err := st.IdentityCert(ctx, enroll.SerialHex(certA)); err != nil || ic.RevokedAt.IsZero() {
		t.Fatalf("certificate of the replaced profile not revoked: %+v %v", ic, err)
	}
	if _, _, err := svc.Renew(ctx, newCSR(t), certA); !errors.Is(err, enroll.ErrBadRenewal) {
		t.Fatalf("renewal by a revoked certificate: %v", err)
	}
	if _, _, err := svc.IssueForChallenge(ctx, newCSR(t), chC); err != nil {
		t.Fatalf("latest challenge: %v", err)
	}
	// Once enrolled, the sign-in cannot make another enrollment.
	if err := st.BindAppleEnrollment(ctx, first.ID, "APPLE-Z", store.DeviceInfo{}, clock); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Profile(ctx, enroll.Request{Tenant: tn, User: u, TokenHash: token.Hash("z"), Body: parsed, Topic: "t"}); !errors.Is(err, enroll.ErrSignInUsed) {
		t.Fatalf("profile with a used sign-in: %v", err)
	}
}
