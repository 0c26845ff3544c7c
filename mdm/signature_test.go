package mdm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
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

// TestCertCache: a remembered certificate is what x509.ParseCertificate
// returns, parsed from a copy; failures are not remembered; memory stays
// within two generations; and a signature checked through the cache is
// judged exactly as without it (a tampered body fails on a hit too).
func TestCertCache(t *testing.T) {
	ca, _ := pki.NewCA("ca", pki.ECDSAP256, time.Now())
	c, k := identity(t, ca)
	k2 := &CertCache{Max: 2}

	der := append([]byte(nil), c.Raw...)
	got, err := k2.Parse(der)
	if err != nil || !got.Equal(c) {
		t.Fatalf("Parse: %v", err)
	}
	der[len(der)-1] ^= 0xff // the request's buffer is reused: the cache must not see it
	if again, err := k2.Parse(c.Raw); err != nil || again != got || !again.Equal(c) {
		t.Fatalf("a second Parse of the same bytes: %p (want the remembered %p), %v", again, got, err)
	}
	if other, err := k2.Parse(der); err != nil || other == got || !bytes.Equal(other.Raw, der) {
		t.Fatalf("other bytes (a changed signature) answered with the remembered certificate: %v", err)
	}
	if _, err := k2.Parse([]byte("not a certificate")); err == nil || k2.Len() != 2 {
		t.Fatalf("garbage: %v, %d remembered (want 2)", err, k2.Len())
	}

	// Bounded: two generations of Max; an entry used again moves forward.
	var certs []*x509.Certificate
	for range 5 {
		ci, _ := identity(t, ca)
		certs = append(certs, ci)
	}
	for i, ci := range certs {
		k2.Parse(ci.Raw)
		k2.Parse(c.Raw) // kept warm
		if n := k2.Len(); n > 2*k2.Max {
			t.Fatalf("after %d certificates: %d remembered, at most %d", i+1, n, 2*k2.Max)
		}
	}
	if hit, _ := k2.Parse(c.Raw); hit != got {
		t.Error("the certificate used on every step was dropped")
	}

	body := []byte("<plist>body</plist>")
	sig := sign(t, body, c, k)
	for i := range 2 { // a miss, then a hit
		signer, err := VerifyDetachedWith(sig, body, k2)
		if err != nil || !signer.Equal(c) {
			t.Fatalf("round %d: %v", i, err)
		}
		if _, err := VerifyDetachedWith(sig, []byte("<plist>other</plist>"), k2); !errors.Is(err, ErrSignature) {
			t.Fatalf("round %d: a tampered body: %v", i, err)
		}
	}
}

// Attack: the cache is filled before any signature is verified, with
// whatever certificates an unauthenticated Mdm-Signature carries (up to
// ~12 KB each). 2×Max certificates of 11 KB held ~100 MB (measured), five
// times what the bound was meant to allow. Certificates larger than
// MaxCachedCert are now parsed but never remembered; Pomona's own
// identities still are.
func TestAttackCertCacheRefusesLargeCertificates(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k := &CertCache{Max: 2048}
	for i := range 3 {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: "x"},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: make([]byte, 11000)}}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := k.Parse(der)
		if err != nil || !bytes.Equal(c.Raw, der) {
			t.Fatalf("a large certificate must still parse: %v", err)
		}
	}
	if n := k.Len(); n != 0 {
		t.Fatalf("%d certificates of 11 KB remembered, want 0", n)
	}
	for _, kt := range []pki.KeyType{pki.ECDSAP256, pki.RSA4096} {
		ca, _ := pki.NewCA("ca", kt, time.Now())
		c, _ := identity(t, ca)
		if len(c.Raw) > MaxCachedCert {
			t.Fatalf("an identity of %d bytes (%s CA) is over MaxCachedCert", len(c.Raw), kt)
		}
	}
	ca, _ := pki.NewCA("ca", pki.ECDSAP256, time.Now())
	c, _ := identity(t, ca)
	if first, _ := k.Parse(c.Raw); first == nil || k.Len() != 1 {
		t.Fatal("an identity certificate was not remembered")
	}
}

// TestIdentityCheckerRemembersValues: a certificate value found good is
// not hashed again (the value CertCache hands out for every request of a
// device), another value of the same bytes is hashed and found in the
// fingerprint memory, and a value whose bytes differ is judged afresh.
func TestIdentityCheckerRemembersValues(t *testing.T) {
	ca, _ := pki.NewCA("ca", pki.ECDSAP256, time.Now())
	c, _ := identity(t, ca)
	hashed := 0
	old := sumCert
	sumCert = func(c *x509.Certificate) [32]byte { hashed++; return old(c) }
	defer func() { sumCert = old }()
	k := &IdentityChecker{CA: ca.Cert, Max: 8}
	for i := 0; i < 3; i++ {
		if err := k.Check(c, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if hashed != 1 {
		t.Fatalf("the same value hashed %d times, want once", hashed)
	}
	again, err := x509.ParseCertificate(c.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Check(again, time.Now()); err != nil || hashed != 2 {
		t.Fatalf("another value of the same bytes: %v, hashed %d", err, hashed)
	}
	forged := *c
	forged.Raw = append([]byte{}, c.Raw...)
	forged.Raw[len(forged.Raw)-1] ^= 1
	forged.Signature = append([]byte{}, c.Signature...)
	forged.Signature[len(forged.Signature)-1] ^= 1
	for i := 0; i < 2; i++ {
		if err := k.Check(&forged, time.Now()); err == nil {
			t.Fatal("a changed certificate passed from memory")
		}
	}
	// The memory stays within Max values.
	for i := 0; i < 20; i++ {
		v, _ := x509.ParseCertificate(c.Raw)
		if err := k.Check(v, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	k.mu.Lock()
	n := len(k.values)
	k.mu.Unlock()
	if n > 8 {
		t.Fatalf("%d values remembered, Max 8", n)
	}
}
