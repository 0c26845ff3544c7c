package profiles

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/profile"
)

// BenchmarkSignProfile is the per-device floor of a signed profile with a
// per-device variable: one CMS signature per rendering (a profile without
// per-device content is signed once per batch instead).
func BenchmarkSignProfile(b *testing.B) {
	for _, k := range []struct {
		name string
		gen  func() (crypto.Signer, error)
	}{
		{"RSA2048", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }},
		{"P256", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
	} {
		b.Run(k.name, func(b *testing.B) {
			key, err := k.gen()
			if err != nil {
				b.Fatal(err)
			}
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench signer"},
				NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
			if err != nil {
				b.Fatal(err)
			}
			cert, _ := x509.ParseCertificate(der)
			payload := []byte(wifi)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := profile.Sign(payload, cert, key, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
