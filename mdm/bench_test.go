package mdm

import (
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/pki"
)

func BenchmarkDecodeCheckin(b *testing.B) {
	body := read(b, "adue-ios18.2.1-TokenUpdate.plist")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeCheckin(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeIdle(b *testing.B) {
	body := read(b, "adue-ios18.2.1-Idle.plist")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeResult(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeCommand(b *testing.B) {
	c := Command{CommandUUID: "6E1F2C3A-0B7D-4C1E-9E55-1A2B3C4D5E6F", Command: map[string]any{"RequestType": "DeviceInformation", "Queries": []any{"OSVersion", "ModelName"}}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := c.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySignature(b *testing.B) {
	ca, _ := pki.NewCA("ca", pki.ECDSAP256, time.Now())
	c, k := identity(b, ca)
	body := read(b, "adue-ios18.2.1-Idle.plist")
	sig := sign(b, body, c, k)
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := VerifySignature(sig, body, ca.Cert, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDetached is the CMS part of VerifySignature alone: what
// every signed request costs once its identity certificate's CA check is
// remembered (IdentityChecker): base64, the bounded DER walk, parsing the
// SignedData and its certificate, hashing the body, the RSA 2048
// signature check.
func BenchmarkVerifyDetached(b *testing.B) {
	ca, _ := pki.NewCA("ca", pki.ECDSAP256, time.Now())
	c, k := identity(b, ca)
	body := read(b, "adue-ios18.2.1-Idle.plist")
	sig := sign(b, body, c, k)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := VerifyDetached(sig, body); err != nil {
			b.Fatal(err)
		}
	}
}
