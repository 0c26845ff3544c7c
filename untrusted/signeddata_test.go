package untrusted

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

// signer is a certificate valid for one hour around now with its key.
func signer(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "device"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// detached signs body as devices do (smallstep/pkcs7 is what devicesim
// and Apple-compatible clients produce: one SignerInfo, signed attributes
// with contentType, messageDigest and signingTime).
func detached(t testing.TB, body []byte, c *x509.Certificate, key crypto.PrivateKey, digest asn1.ObjectIdentifier, attached bool) []byte {
	t.Helper()
	sd, err := pkcs7.NewSignedData(body)
	if err != nil {
		t.Fatal(err)
	}
	sd.SetDigestAlgorithm(digest)
	if err := sd.AddSigner(c, key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	if !attached {
		sd.Detach()
	}
	der, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Signatures as devices make them (RSA and ECDSA keys, SHA-1 and SHA-256)
// parse and verify, and agree with smallstep/pkcs7 on the signer.
func TestSignedDataVerifies(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	body := []byte("<plist><dict><key>Status</key><string>Idle</string></dict></plist>")
	for _, key := range []crypto.Signer{rk, ek} {
		c := signer(t, key)
		for _, digest := range []asn1.ObjectIdentifier{SHA1, SHA256} {
			der := detached(t, body, c, key, digest, false)
			sd, err := ParseSignedData(der, DefaultASN1, SHA1, SHA256)
			if err != nil {
				t.Fatalf("%T %v: %v", key, digest, err)
			}
			if sd.HasContent || len(sd.Certificates) != 1 {
				t.Fatalf("content %v, %d certificates", sd.HasContent, len(sd.Certificates))
			}
			got, err := sd.Verify(body, false)
			if err != nil || !got.Equal(c) {
				t.Fatalf("%T %v: %v", key, digest, err)
			}
			p7, err := pkcs7.Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			p7.Content = body
			if err := p7.Verify(); err != nil || !p7.GetOnlySigner().Equal(got) {
				t.Fatalf("smallstep/pkcs7 disagrees: %v", err)
			}
			if _, err := sd.Verify(append(body, ' '), false); !errors.Is(err, ErrCMS) {
				t.Fatalf("another body verified: %v", err)
			}
		}
	}
	// Attached content is returned, and verifies over itself.
	c := signer(t, ek)
	sd, err := ParseSignedData(detached(t, body, c, ek, SHA256, true), DefaultASN1, SHA256)
	if err != nil || !bytes.Equal(sd.Content, body) {
		t.Fatalf("attached: %v %q", err, sd.Content)
	}
	if _, err := sd.Verify(sd.Content, false); err != nil {
		t.Fatal(err)
	}
}

// Every refusal wraps ErrCMS and happens before hashing where the
// structure is at fault.
func TestSignedDataRefusals(t *testing.T) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := signer(t, ek)
	body := []byte("<plist/>")
	good := detached(t, body, c, ek, SHA256, false)
	flip := func(in []byte, old, new []byte) []byte {
		i := bytes.LastIndex(in, old) // the SignerInfo comes last
		if i < 0 {
			t.Fatalf("%x not in the signature", old)
		}
		out := bytes.Clone(in)
		copy(out[i:], new)
		return out
	}
	sha256DER, _ := asn1.Marshal(SHA256)
	sha512DER, _ := asn1.Marshal(SHA512)
	for _, tc := range []struct {
		name string
		in   []byte
		err  string
	}{
		{"two signers", untrustedtest.DetachedRepeated(t, body, c, ek, 2), "2 SignerInfos"},
		{"no signer", untrustedtest.DetachedRepeated(t, body, c, ek, 0), "0 SignerInfos"},
		{"SHA-512 digest", flip(good, sha256DER, sha512DER), "not accepted"},
		{"hostile BER", untrustedtest.Read(t, untrustedtest.NestedBER), "runs past its parent"},
		{"not CMS", []byte("hello"), "malformed"},
		{"not SignedData", flip(good, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}), "not a SignedData"},
		{"unknown signer", flip(good, []byte{0x02, 0x01, 0x07, 0x30}, []byte{0x02, 0x01, 0x08, 0x30}), "no certificate for the signer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			untrustedtest.Bounded(t, time.Second, 16<<20, func() {
				var sd *SignedData
				if sd, err = ParseSignedData(tc.in, DefaultASN1, SHA1, SHA256); err == nil {
					_, err = sd.Verify(body, false)
				}
			})
			if !errors.Is(err, ErrCMS) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// A signing time outside the signer's validity is ErrSigningTime, unless
// the caller asks to ignore it (the expired-identity re-check).
func TestSignedDataSigningTime(t *testing.T) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "expired"},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, ek.Public(), ek)
	c, _ := x509.ParseCertificate(der)
	body := []byte("<plist/>")
	sd, err := ParseSignedData(detached(t, body, c, ek, SHA256, false), DefaultASN1, SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sd.Verify(body, false); !errors.Is(err, ErrSigningTime) || !errors.Is(err, ErrCMS) {
		t.Fatalf("expired signer: %v", err)
	}
	if got, err := sd.Verify(body, true); err != nil || !got.Equal(c) {
		t.Fatalf("any time: %v", err)
	}
	if _, err := sd.Verify([]byte("other"), true); errors.Is(err, ErrSigningTime) || !errors.Is(err, ErrCMS) {
		t.Fatalf("any time, other body: %v", err)
	}
}

// FuzzParseSignedData: any input is refused or parsed within a second and
// 16 MiB; refusals wrap ErrCMS; a verified signer is one of the message's
// certificates, and only the genuine body verifies.
func FuzzParseSignedData(f *testing.F) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := signer(f, ek)
	body := []byte("<plist/>")
	f.Add(detached(f, body, c, ek, SHA256, false))
	f.Add(detached(f, body, c, ek, SHA1, true))
	f.Add(untrustedtest.DetachedRepeated(f, body, c, ek, 3))
	f.Add(untrustedtest.Read(f, untrustedtest.NestedBER))
	f.Fuzz(func(t *testing.T, in []byte) {
		var sd *SignedData
		var got *x509.Certificate
		var err, verr error
		untrustedtest.Bounded(t, time.Second, 16<<20, func() {
			if sd, err = ParseSignedData(in, DefaultASN1, SHA1, SHA256); err == nil {
				got, verr = sd.Verify(body, false)
			}
		})
		if err != nil {
			if !errors.Is(err, ErrCMS) {
				t.Fatalf("refusal without ErrCMS: %v", err)
			}
			return
		}
		if verr != nil {
			if !errors.Is(verr, ErrCMS) {
				t.Fatalf("refusal without ErrCMS: %v", verr)
			}
			return
		}
		found := false
		for _, x := range sd.Certificates {
			found = found || x == got
		}
		if !found {
			t.Fatal("the signer is not one of the message's certificates")
		}
		if _, err := sd.Verify([]byte("<plist>other</plist>"), true); err == nil {
			t.Fatal("another body verified")
		}
	})
}
