package mdmservice

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

// A device whose identity expired signs with a signing time after the
// certificate's NotAfter: the CMS check refuses it, expiredSigner still
// finds the (verified) signer, and nothing else passes.
func TestExpiredSigner(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	mk := func(nb, na time.Time) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "en_x"},
			NotBefore: nb, NotAfter: na}, &x509.Certificate{Subject: pkix.Name{CommonName: "ca"}}, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	expired := mk(now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	valid := mk(now.Add(-time.Hour), now.Add(time.Hour))
	sign := func(c *x509.Certificate, body []byte) string {
		sd, _ := pkcs7.NewSignedData(body)
		if err := sd.AddSigner(c, key, pkcs7.SignerInfoConfig{}); err != nil {
			t.Fatal(err)
		}
		sd.Detach()
		der, _ := sd.Finish()
		return base64.StdEncoding.EncodeToString(der)
	}
	body := []byte("<plist/>")
	hdr := sign(expired, body)
	if _, err := mdm.VerifyDetached(hdr, body); !errors.Is(err, mdm.ErrSigningTime) {
		t.Fatalf("the CMS check on a signing time after NotAfter: %v, want ErrSigningTime (which sends the request to expiredSigner)", err)
	}
	if c := expiredSigner(hdr, body); c == nil || !c.Equal(expired) || !c.NotAfter.Equal(expired.NotAfter) {
		t.Fatalf("expired signer not found: %v", c)
	}
	forged := func() string {
		sd, _ := pkcs7.NewSignedData(body)
		sd.AddSigner(expired, other, pkcs7.SignerInfoConfig{}) // wrong key
		sd.Detach()
		der, _ := sd.Finish()
		return base64.StdEncoding.EncodeToString(der)
	}()
	for name, tc := range map[string]struct {
		hdr  string
		body []byte
	}{
		"other body":    {hdr, []byte("<plist>x</plist>")},
		"wrong key":     {forged, body},
		"not base64":    {"%%%", body},
		"empty":         {"", body},
		"too large":     {string(make([]byte, mdm.MaxSignature+1)), body},
		"valid, intact": {sign(valid, body), []byte("tampered")},
	} {
		if c := expiredSigner(tc.hdr, tc.body); c != nil {
			t.Errorf("%s: signer %v", name, c.Subject)
		}
	}
}

// expiredSigner reads the same unauthenticated Mdm-Signature as
// mdm.VerifyDetached, after it refused it: the hostile headers must be
// refused under the same bounds. Before, it handed the header to
// pkcs7.Parse directly (the nested BER cost gigabytes) and verified every
// SignerInfo (the 8 MiB body hashed 40 times).
func TestExpiredSignerHostileHeaders(t *testing.T) {
	big := bytes.Repeat([]byte("<plist><string>x</string></plist>"), (8<<20)/33)
	ac, ak := untrustedtest.SelfSigned(t, "attacker")
	for _, tc := range []struct {
		name, sig string
		body      []byte
	}{
		{"nested definite BER", base64.StdEncoding.EncodeToString(untrustedtest.Read(t, untrustedtest.NestedBER)), []byte("<plist/>")},
		{"40 SignerInfos over 8 MiB", base64.StdEncoding.EncodeToString(untrustedtest.DetachedRepeated(t, big, ac, ak, 40)), big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *x509.Certificate
			untrustedtest.Bounded(t, 200*time.Millisecond, 4<<20, func() { c = expiredSigner(tc.sig, tc.body) })
			if c != nil {
				t.Fatalf("signer %v from a hostile header", c.Subject)
			}
		})
	}
}
