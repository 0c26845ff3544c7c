package devicesim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

func testIdentity(t *testing.T) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sim"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

// A reused signature is only ever one over exactly the body sent, by the
// current identity; without ReuseSignatures every request is signed anew.
func TestSignatureReuse(t *testing.T) {
	key, cert := testIdentity(t)
	idle, ack := []byte("<plist>idle</plist>"), []byte("<plist>ack</plist>")
	verify := func(t *testing.T, h string, body []byte) {
		t.Helper()
		der, err := base64.StdEncoding.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		p7, err := pkcs7.Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		p7.Content = body
		if err := p7.Verify(); err != nil {
			t.Fatalf("signature does not verify over the body sent: %v", err)
		}
	}
	sign := func(t *testing.T, d *Device, body []byte) string {
		t.Helper()
		h, err := d.signature(body)
		if err != nil {
			t.Fatal(err)
		}
		verify(t, h, body)
		return h
	}
	for _, tc := range []struct {
		name        string
		reuse       bool
		bodies      [][]byte
		wantSigns   int // RSA signatures made
		newIdentity bool
	}{
		{"off: same body signed anew", false, [][]byte{idle, idle}, 2, false},
		{"on: same body reused", true, [][]byte{idle, idle}, 1, false},
		{"on: other body in between", true, [][]byte{idle, ack, idle}, 3, false},
		{"on: different body", true, [][]byte{idle, ack}, 2, false},
		{"on: new identity", true, [][]byte{idle, idle}, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Device{IdentityKey: key, IdentityCert: cert, ReuseSignatures: tc.reuse}
			var hs []string
			for i, b := range tc.bodies {
				if tc.newIdentity && i == len(tc.bodies)-1 {
					d.IdentityKey, d.IdentityCert = testIdentity(t)
				}
				hs = append(hs, sign(t, d, b))
			}
			if d.signed != tc.wantSigns {
				t.Errorf("%d signatures made, want %d", d.signed, tc.wantSigns)
			}
			if tc.wantSigns < len(tc.bodies) && hs[len(hs)-1] != hs[len(hs)-2] {
				t.Error("a reused signature differs from the one sent before")
			}
		})
	}
}
