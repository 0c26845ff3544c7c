package enroll_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"

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
		if err := st.CreateAccessToken(ctx, &store.AccessToken{Hash: opaquetoken.Hash(tok), UserID: u.ID, TenantID: tn.ID, CreatedAt: clock, ExpiresAt: clock.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	var last *store.Enrollment
	var firstProfile []byte
	fetch := func(tok string) string {
		signed, e, err := svc.Profile(ctx, enroll.Request{Tenant: tn, User: u, TokenHash: opaquetoken.Hash(tok), Body: parsed, Topic: "com.apple.mgmt.External.t"})
		if err != nil {
			t.Fatal(err)
		}
		last = e
		if e.Product != "iPhone12,1" || e.DeviceSignature != enroll.SigApple || e.Platform != catalog.IOS {
			t.Fatalf("enrollment %+v", e)
		}
		if firstProfile == nil {
			firstProfile = signed
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
	if _, _, err := svc.IssueForSCEPChallenge(ctx, newCSR(t), "unknown"); !errors.Is(err, enroll.ErrBadSCEPChallenge) {
		t.Fatalf("unknown: %v", err)
	}
	if _, _, err := svc.IssueForSCEPChallenge(ctx, newCSR(t), ""); !errors.Is(err, enroll.ErrNoSCEPChallenge) {
		t.Fatalf("empty: %v", err)
	}
	cert, e, err := svc.IssueForSCEPChallenge(ctx, newCSR(t), ch)
	if err != nil || cert.Subject.CommonName != e.ID || cert.CheckSignatureFrom(ca.Cert) != nil {
		t.Fatalf("issue: %v", err)
	}
	if cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || cert.NotAfter.Sub(cert.NotBefore) > pki.IdentityValidity+time.Hour {
		t.Fatal("identity certificate shape")
	}
	if _, _, err := svc.IssueForSCEPChallenge(ctx, newCSR(t), ch); !errors.Is(err, enroll.ErrSCEPChallengeUsed) {
		t.Fatalf("reused: %v", err)
	}
	// A CSR with a broken signature is refused and does not consume.
	ch2 := fetch("y")
	bad := newCSR(t)
	bad.Signature[0] ^= 0xff
	if _, _, err := svc.IssueForSCEPChallenge(ctx, bad, ch2); err == nil {
		t.Fatal("bad CSR signature accepted")
	}
	clock = clock.Add(enroll.DefaultSCEPChallengeTTL + time.Second)
	if _, _, err := svc.IssueForSCEPChallenge(ctx, newCSR(t), ch2); !errors.Is(err, enroll.ErrSCEPChallengeExpired) {
		t.Fatalf("expired: %v", err)
	}
	clock = time.Now()

	// Renewal: the re-sent profile keeps every immutable key, and its
	// challenge issues the successor for the same enrollment.
	topic := "com.apple.mgmt.External.t"
	if _, _, err := svc.RenewalProfile(ctx, e, pki.SerialHex(cert), topic, 0); !errors.Is(err, enroll.ErrNotRenewable) {
		t.Fatalf("renewal of a pending enrollment: %v", err)
	}
	if err := st.BindAppleEnrollment(ctx, e.ID, "APPLE-1", store.DeviceInfo{}, clock); err != nil {
		t.Fatal(err)
	}
	e, _ = st.Enrollment(ctx, e.ID)
	// What changed since the enrollment is not what the device installed:
	// the re-sent profile repeats the recorded keys.
	if _, err := st.UpdateUser(ctx, u.ID, func(u *store.User) error { u.ManagedAppleID = "amy.new@a.example"; return nil }); err != nil {
		t.Fatal(err)
	}
	svc.URLs.ServerURL = "https://moved.example.net/mdm/connect"
	signed, r, err := svc.RenewalProfile(ctx, e, pki.SerialHex(cert), "com.apple.mgmt.External.other", 0)
	if err != nil || r.Status != store.RenewalQueued || r.Attempts != 1 {
		t.Fatalf("renewal profile: %+v %v", r, err)
	}
	if _, _, err := svc.RenewalProfile(ctx, e, pki.SerialHex(cert), topic, 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second renewal while one is queued: %v", err)
	}
	orig, renewed := payloads(t, firstProfile), payloads(t, signed)
	for _, k := range []string{"PayloadIdentifier", "Topic", "ServerURL", "CheckInURL", "AssignedManagedAppleID", "EnrollmentMode", "ServerCapabilities"} {
		if fmt.Sprint(orig["mdm"][k]) != fmt.Sprint(renewed["mdm"][k]) || orig["mdm"][k] == nil {
			t.Errorf("immutable key %s: %v, renewal %v", k, orig["mdm"][k], renewed["mdm"][k])
		}
	}
	if orig["top"]["PayloadIdentifier"] != renewed["top"]["PayloadIdentifier"] || renewed["top"]["PayloadIdentifier"] != e.ProfileID {
		t.Errorf("profile identifier %v, renewal %v", orig["top"]["PayloadIdentifier"], renewed["top"]["PayloadIdentifier"])
	}
	rch := renewed["scep"]["Challenge"].(string)
	if rch == orig["scep"]["Challenge"] {
		t.Fatal("the renewal reuses the enrollment challenge")
	}
	next, ne, err := svc.IssueForSCEPChallenge(ctx, newCSR(t), rch)
	if err != nil || ne.ID != e.ID || next.Subject.CommonName != e.ID {
		t.Fatalf("renewal SCEP: %v", err)
	}
	if ic, err := st.IdentityCert(ctx, pki.SerialHex(next)); err != nil || ic.RenewedFrom != pki.SerialHex(cert) || ic.DeviceID != e.ID {
		t.Fatalf("renewed certificate record: %+v %v", ic, err)
	}
	if lr, _ := st.LatestRenewal(ctx, e.ID); lr.Status != store.RenewalDone || lr.NewSerial != pki.SerialHex(next) {
		t.Fatalf("renewal state after SCEP: %+v", lr)
	}
	if _, _, err := svc.IssueForSCEPChallenge(ctx, newCSR(t), rch); !errors.Is(err, enroll.ErrSCEPChallengeUsed) {
		t.Fatalf("renewal challenge reused: %v", err)
	}
	// An enrollment that ended meanwhile gets no certificate.
	signed, _, err = svc.RenewalProfile(ctx, e, pki.SerialHex(next), topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EndEnrollment(ctx, e.ID, "test", clock); err != nil {
		t.Fatal(err)
	}
	// Ending deletes the enrollment's unused challenges, the renewal's too.
	if _, _, err := svc.IssueForSCEPChallenge(ctx, newCSR(t), payloads(t, signed)["scep"]["Challenge"].(string)); !errors.Is(err, enroll.ErrBadSCEPChallenge) {
		t.Fatalf("renewal of an ended enrollment: %v", err)
	}

	// One sign-in, one enrollment: fetching again with token z replaces
	// its pending enrollment; the earlier challenge stops working and a
	// certificate issued for it is revoked (finding 9 of issue 11).
	chA := fetch("z")
	first := last
	certA, _, err := svc.IssueForSCEPChallenge(ctx, newCSR(t), chA)
	if err != nil {
		t.Fatal(err)
	}
	chB := fetch("z")
	chC := fetch("z")
	if last.ID != first.ID {
		t.Fatalf("a second pending enrollment %s for one sign-in (first %s)", last.ID, first.ID)
	}
	if _, _, err := svc.IssueForSCEPChallenge(ctx, newCSR(t), chB); !errors.Is(err, enroll.ErrBadSCEPChallenge) {
		t.Fatalf("replaced challenge: %v", err)
	}
	if ic, err := st.IdentityCert(ctx, pki.SerialHex(certA)); err != nil || ic.RevokedAt.IsZero() {
		t.Fatalf("certificate of the replaced profile not revoked: %+v %v", ic, err)
	}
	if _, _, err := svc.IssueForSCEPChallenge(ctx, newCSR(t), chC); err != nil {
		t.Fatalf("latest challenge: %v", err)
	}
	// Once enrolled, the sign-in cannot make another enrollment.
	if err := st.BindAppleEnrollment(ctx, first.ID, "APPLE-Z", store.DeviceInfo{}, clock); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Profile(ctx, enroll.Request{Tenant: tn, User: u, TokenHash: opaquetoken.Hash("z"), Body: parsed, Topic: "t"}); !errors.Is(err, enroll.ErrSignInUsed) {
		t.Fatalf("profile with a used sign-in: %v", err)
	}
}

// payloads returns the top level, the MDM payload and the SCEP payload's
// content of a signed profile.
func payloads(t *testing.T, signed []byte) map[string]map[string]any {
	t.Helper()
	p7, err := pkcs7.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := plist.Unmarshal(p7.Content, &top); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{"top": top}
	for _, p := range top["PayloadContent"].([]any) {
		m := p.(map[string]any)
		switch m["PayloadType"] {
		case "com.apple.mdm":
			out["mdm"] = m
		case "com.apple.security.scep":
			out["scep"] = m["PayloadContent"].(map[string]any)
		}
	}
	return out
}
