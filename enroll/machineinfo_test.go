package enroll

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

func TestRealIPhoneBody(t *testing.T) {
	body, err := os.ReadFile("testdata/iphone12-1-ios15.7-enroll-body.p7s")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseBody(body)
	if err != nil {
		t.Fatal(err)
	}
	if p.Info.Product != "iPhone12,1" || p.Info.Version != "19H12" || p.Info.Language != "ja-JP" {
		t.Fatalf("info %+v", p.Info)
	}
	if p.Signature != SigApple {
		t.Fatalf("signature %s: %s", p.Signature, p.SignatureDetail)
	}
	if Platform(p.Info.Product) != catalog.IOS {
		t.Fatal("platform")
	}
	// Tampering with the signed content is noticed (advisory, but logged).
	bad := append([]byte{}, body...)
	i := strings.Index(string(bad), "iPhone12,1")
	bad[i+6] = '9'
	p, err = ParseBody(bad)
	if err != nil {
		t.Fatal(err)
	}
	if p.Signature != SigInvalid || p.Info.Product != "iPhone92,1" {
		t.Fatalf("tampered body: %s %+v", p.Signature, p.Info)
	}
}

func selfSigned(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sim"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func sign(t *testing.T, content []byte) []byte {
	c, k := selfSigned(t)
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.AddSigner(c, k, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	der, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

const macPlist = `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>LANGUAGE</key><string>en-US</string><key>PRODUCT</key><string>Mac14,2</string>
<key>VERSION</key><string>24C101</string><key>OS_VERSION</key><string>15.2</string>
<key>UDID</key><string>0000-SECRET-UDID</string><key>SERIAL</key><string>C02SERIAL</string>
</dict></plist>`

func TestParseBody(t *testing.T) {
	p, err := ParseBody(sign(t, []byte(macPlist)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Signature != SigOther || p.Info.OSVersion != "15.2" || Platform(p.Info.Product) != catalog.MacOS {
		t.Fatalf("%+v", p)
	}
	stored := string(p.Info.Sanitized())
	if strings.Contains(stored, "SECRET") || strings.Contains(stored, "C02SERIAL") || !strings.Contains(stored, "Mac14,2") {
		t.Fatalf("sanitized machine info keeps identifiers:\n%s", stored)
	}
	p, err = ParseBody([]byte(macPlist))
	if err != nil || p.Signature != SigUnsigned {
		t.Fatalf("bare plist: %+v %v", p, err)
	}
	for name, body := range map[string][]byte{
		"empty":              nil,
		"garbage":            []byte("hello=world&a=b"),
		"json":               []byte(`{"PRODUCT":"iPhone"}`),
		"signed non-plist":   sign(t, []byte("not a plist")),
		"plist without prod": []byte(`<plist version="1.0"><dict><key>LANGUAGE</key><string>en</string></dict></plist>`),
		"truncated cms":      sign(t, []byte(macPlist))[:100],
		"plist wrong types":  []byte(`<plist version="1.0"><dict><key>PRODUCT</key><array/></dict></plist>`),
	} {
		if _, err := ParseBody(body); !errors.Is(err, ErrBody) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestPlatform(t *testing.T) {
	for in, want := range map[string]string{"iPhone15,3": catalog.IOS, "iPad13,4": catalog.IOS, "Mac14,2": catalog.MacOS, "MacBookPro18,1": catalog.MacOS,
		"iMac21,1": catalog.MacOS, "VirtualMac2,1": catalog.MacOS, "AppleTV11,1": "", "Watch6,1": "", "RealityDevice14,1": "", "": ""} {
		if got := Platform(in); got != want {
			t.Errorf("Platform(%q) = %q", in, got)
		}
	}
}

func FuzzParseBody(f *testing.F) {
	body, _ := os.ReadFile("testdata/iphone12-1-ios15.7-enroll-body.p7s")
	f.Add(body)
	f.Add([]byte(macPlist))
	f.Add([]byte("bplist00"))
	f.Add([]byte{0x30, 0x80, 0x06, 0x09})
	for _, n := range append([]string{untrustedtest.NestedBER}, untrustedtest.BinaryPlists...) {
		f.Add(untrustedtest.Read(f, n))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p *Parsed
		var err error
		untrustedtest.Bounded(t, time.Second, 32<<20, func() { p, err = ParseBody(b) })
		if err != nil {
			if !errors.Is(err, ErrBody) {
				t.Fatalf("error not wrapping ErrBody: %v", err)
			}
			return
		}
		if p.Info.Product == "" || p.Signature == "" {
			t.Fatalf("accepted without product or signature result: %+v", p)
		}
	})
}
