package mdm

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

func identity(t testing.TB, ca *pki.CA) (*x509.Certificate, *rsa.PrivateKey) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "d"}}, k)
	csr, _ := x509.ParseCertificateRequest(der)
	c, err := ca.IssueIdentity(csr, "en_1", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func sign(t testing.TB, body []byte, c *x509.Certificate, k *rsa.PrivateKey) string {
	sd, _ := pkcs7.NewSignedData(body)
	if err := sd.AddSigner(c, k, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	sd.Detach()
	der, _ := sd.Finish()
	return base64.StdEncoding.EncodeToString(der)
}

func TestVerifySignature(t *testing.T) {
	ca, _ := pki.NewCA("ca", pki.ECDSAP256, time.Now())
	other, _ := pki.NewCA("other", pki.ECDSAP256, time.Now())
	c, k := identity(t, ca)
	oc, ok := identity(t, other)
	body := []byte("<plist>body</plist>")
	sig := sign(t, body, c, k)
	got, err := VerifySignature(sig, body, ca.Cert, time.Now())
	if err != nil || !got.Equal(c) {
		t.Fatalf("%v", err)
	}
	attached, _ := pkcs7.NewSignedData(body)
	attached.AddSigner(c, k, pkcs7.SignerInfoConfig{})
	ader, _ := attached.Finish()
	for name, tc := range map[string]struct {
		sig  string
		body []byte
		at   time.Time
	}{
		"no header":    {"", body, time.Now()},
		"not base64":   {"!!!", body, time.Now()},
		"not cms":      {base64.StdEncoding.EncodeToString([]byte("nope")), body, time.Now()},
		"other body":   {sig, []byte("<plist>other</plist>"), time.Now()},
		"foreign CA":   {sign(t, body, oc, ok), body, time.Now()},
		"expired":      {sig, body, time.Now().Add(2 * pki.IdentityValidity)},
		"not detached": {base64.StdEncoding.EncodeToString(ader), body, time.Now()},
		"huge":         {string(make([]byte, MaxSignature+1)), body, time.Now()},
	} {
		if _, err := VerifySignature(tc.sig, tc.body, ca.Cert, tc.at); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzVerifySignature(f *testing.F) {
	ca, _ := pki.NewCA("ca", pki.ECDSAP256, time.Now())
	c, k := identity(f, ca)
	body := []byte("<plist/>")
	f.Add(sign(f, body, c, k), body)
	f.Add("MIIB", []byte{})
	f.Add(base64.StdEncoding.EncodeToString(untrustedtest.Read(f, untrustedtest.NestedBER)), body)
	f.Fuzz(func(t *testing.T, sig string, b []byte) {
		var got *x509.Certificate
		var err error
		untrustedtest.Bounded(t, time.Second, 32<<20, func() { got, err = VerifySignature(sig, b, ca.Cert, time.Now()) })
		if err == nil && (got == nil || got.CheckSignatureFrom(ca.Cert) != nil) {
			t.Fatal("accepted a signer not from the CA")
		}
		if err != nil && !errors.Is(err, ErrSignature) {
			t.Fatalf("unexpected error: %v", err)
		}
	})
}

func TestIdentityChecker(t *testing.T) {
	ca, _ := pki.NewCA("ca", pki.ECDSAP256, time.Now())
	other, _ := pki.NewCA("other", pki.ECDSAP256, time.Now())
	c, _ := identity(t, ca)
	oc, _ := identity(t, other)
	k := &IdentityChecker{CA: ca.Cert, Max: 2}
	for i := 0; i < 3; i++ {
		if err := k.Check(c, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := k.Check(oc, time.Now()); !errors.Is(err, ErrSignature) {
			t.Fatalf("foreign certificate passed: %v", err)
		}
	}
	// A remembered certificate is still refused outside its validity.
	if err := k.Check(c, time.Now().Add(2*pki.IdentityValidity)); !errors.Is(err, ErrSignature) {
		t.Fatal("expired certificate passed from memory")
	}
	// A forged certificate with the same subject is not the same bytes.
	forged := *c
	forged.Raw = append([]byte{}, c.Raw...)
	forged.Raw[len(forged.Raw)-1] ^= 1
	forged.Signature = append([]byte{}, c.Signature...)
	forged.Signature[len(forged.Signature)-1] ^= 1
	if err := k.Check(&forged, time.Now()); err == nil {
		t.Fatal("a changed certificate passed from memory")
	}
}
