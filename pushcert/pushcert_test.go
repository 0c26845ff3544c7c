package pushcert

import (
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/pomona-mdm/pomona/pki"
)

func TestLocalCertRoundTrips(t *testing.T) {
	ca, _ := pki.NewCA("push test", pki.ECDSAP256, time.Now())
	c, err := NewLocal("com.apple.mgmt.External.0f1e2d3c-aaaa-bbbb-cccc-000000000001", ca, time.Now().Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := pki.KeyPEM(c.Key)
	p, err := ParsePEM(pki.CertPEM(c.Cert), kp)
	if err != nil || p.Topic != c.Topic || p.IssuedByApple {
		t.Fatalf("PEM: %+v %v", p, err)
	}
	if probs := p.Problems(time.Now()); len(probs) != 1 || !strings.Contains(probs[0], "not issued by Apple") {
		t.Fatalf("problems %v", probs)
	}
	if probs := p.Problems(time.Now().Add(350 * 24 * time.Hour)); len(probs) != 2 || !strings.Contains(probs[0], "expires in") {
		t.Fatalf("problems near expiry %v", probs)
	}
	if probs := p.Problems(time.Now().Add(400 * 24 * time.Hour)); !strings.Contains(probs[0], "expired") {
		t.Fatalf("problems after expiry %v", probs)
	}
	// Certificate alone (key kept from the CSR step).
	if p, err := ParsePEM(pki.CertPEM(c.Cert), nil); err != nil || p.Key != nil {
		t.Fatalf("cert only: %v", err)
	}
	p12, err := pkcs12.Modern.Encode(c.Key, c.Cert, nil, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ParsePKCS12(p12, "s3cret"); err != nil || p.Topic != c.Topic {
		t.Fatalf("p12: %v", err)
	}
	if _, err := ParsePKCS12(p12, "wrong"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("wrong password: %v", err)
	}
	other, _ := NewLocal("com.apple.mgmt.External.x", ca, time.Now().Add(time.Hour))
	okp, _ := pki.KeyPEM(other.Key)
	if _, err := ParsePEM(pki.CertPEM(c.Cert), okp); err == nil {
		t.Fatal("mismatched key accepted")
	}
}

func TestRejectsNonPushCerts(t *testing.T) {
	ca, _ := pki.NewCA("x", pki.ECDSAP256, time.Now())
	cert, key, _ := ca.IssueServer([]string{"example.com"}, pki.ECDSAP256, time.Now())
	kp, _ := pki.KeyPEM(key)
	if _, err := ParsePEM(pki.CertPEM(cert), kp); err == nil || !strings.Contains(err.Error(), "UID") {
		t.Fatalf("TLS cert accepted: %v", err)
	}
	if _, err := NewLocal("com.example.notmdm", ca, time.Now().Add(time.Hour)); err == nil {
		t.Fatal("non-MDM topic accepted")
	}
	if _, err := ParsePEM([]byte("junk"), nil); err == nil {
		t.Fatal("junk accepted")
	}
}

func TestAppleIssuer(t *testing.T) {
	ca, _ := pki.NewCA("x", pki.ECDSAP256, time.Now())
	c, _ := NewLocal("com.apple.mgmt.External.y", ca, time.Now().Add(time.Hour))
	c.Cert.Issuer = pkix.Name{Organization: []string{"Apple Inc."}, CommonName: "Apple Application Integration 2 Certification Authority"}
	if !appleIssued(c.Cert) {
		t.Fatal("Apple issuer not recognised")
	}
}

func TestCSR(t *testing.T) {
	csr, key, err := NewCSR("Pomona push")
	if err != nil || key == nil || !strings.Contains(string(csr), "CERTIFICATE REQUEST") {
		t.Fatal(err)
	}
}
