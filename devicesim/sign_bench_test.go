package devicesim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

// BenchmarkSignMessage: what the load generator pays to sign one MDM
// request (the CMS SignedData of an Acknowledged, ~400 bytes).
func BenchmarkSignMessage(b *testing.B) {
	key, cert := testIdentity(&testing.T{})
	d := &Device{IdentityKey: key, IdentityCert: cert}
	body := []byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>CommandUUID</key><string>0F0E0D0C-0B0A-0908-0706-050403020100</string><key>RequestType</key><string>InstallProfile</string><key>Status</key><string>Acknowledged</string><key>UDID</key><string>x</string></dict></plist>`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.SignMessage(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSASign: the RSA-2048 PKCS #1 v1.5 operation alone, the floor
// of SignMessage.
func BenchmarkRSASign(b *testing.B) {
	key, _ := testIdentity(&testing.T{})
	h := sha256.Sum256([]byte("x"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:]); err != nil {
			b.Fatal(err)
		}
	}
}
