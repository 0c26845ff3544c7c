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

	"github.com/micromdm/plist"
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
// current identity, of a repeated message (an Idle poll); without
// ReuseSignatures every request is signed anew.
func TestSignatureReuse(t *testing.T) {
	key, cert := testIdentity(t)
	type msg struct {
		body     string
		repeated bool
	}
	idle, idle2, ack := msg{"<plist>idle</plist>", true}, msg{"<plist>idle of another</plist>", true}, msg{"<plist>ack</plist>", false}
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
	for _, tc := range []struct {
		name        string
		reuse       bool
		msgs        []msg
		wantSigns   int  // RSA signatures made
		newIdentity bool // before the last message
	}{
		{"off: Idle signed anew", false, []msg{idle, idle}, 2, false},
		{"on: Idle reused", true, []msg{idle, idle}, 1, false},
		{"on: Idle reused across an answer", true, []msg{idle, ack, idle}, 2, false},
		{"on: another body", true, []msg{idle, idle2}, 2, false},
		{"on: answers never reused", true, []msg{ack, ack}, 2, false},
		{"on: new identity", true, []msg{idle, idle}, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Device{IdentityKey: key, IdentityCert: cert, ReuseSignatures: tc.reuse}
			for i, m := range tc.msgs {
				if tc.newIdentity && i == len(tc.msgs)-1 {
					d.IdentityKey, d.IdentityCert = testIdentity(t)
				}
				h, err := d.signature([]byte(m.body), m.repeated)
				if err != nil {
					t.Fatal(err)
				}
				verify(t, h, []byte(m.body))
			}
			if d.signed != tc.wantSigns {
				t.Errorf("%d signatures made, want %d", d.signed, tc.wantSigns)
			}
		})
	}
}

// SignIdle signs exactly the Idle that Poll sends next (the same bytes),
// so that Idle is not signed again; without ReuseSignatures it signs
// nothing and every request is signed as it is sent.
func TestSignIdle(t *testing.T) {
	key, cert := testIdentity(t)
	for _, reuse := range []bool{true, false} {
		d := &Device{IdentityKey: key, IdentityCert: cert, ReuseSignatures: reuse}
		d.MDM.EnrollmentID = "7D1E2F30-0000-4000-8000-000000000001"
		if err := d.SignIdle(false); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[reuse]; d.signed != want {
			t.Fatalf("reuse %v: SignIdle made %d RSA signatures, want %d", reuse, d.signed, want)
		}
		body, err := plist.MarshalIndent(d.pollMessage(nil, false), "\t")
		if err != nil {
			t.Fatal(err)
		}
		h, err := d.signature(body, true) // what Poll(nil) does
		if err != nil {
			t.Fatal(err)
		}
		der, _ := base64.StdEncoding.DecodeString(h)
		p7, err := pkcs7.Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		p7.Content = body
		if err := p7.Verify(); err != nil {
			t.Fatalf("reuse %v: the Idle's signature does not verify over its bytes: %v", reuse, err)
		}
		if d.signed != 1 {
			t.Fatalf("reuse %v: %d RSA signatures for SignIdle and the Idle, want 1", reuse, d.signed)
		}
	}
}
