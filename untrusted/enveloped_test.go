package untrusted

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

func rsaRecipient(t *testing.T, serial int64) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "recipient"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

// TestDecryptEnveloped: the recipient decrypts; another key (even with a
// certificate of the same name) is ErrNotForKey; garbage, a SignedData and
// oversized input are ErrCMS.
func TestDecryptEnveloped(t *testing.T) {
	cert, key := rsaRecipient(t, 1)
	other, otherKey := rsaRecipient(t, 2)
	msg := []byte("the server token")
	env, err := pkcs7.Encrypt(msg, []*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecryptEnveloped(env, DefaultASN1, cert, key)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("decrypt: %q %v", got, err)
	}
	if _, err := DecryptEnveloped(env, DefaultASN1, other, otherKey); !errors.Is(err, ErrNotForKey) {
		t.Fatalf("another key: %v", err)
	}
	sd, _ := pkcs7.NewSignedData(msg)
	sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{})
	signed, _ := sd.Finish()
	for name, in := range map[string][]byte{"garbage": []byte("not CMS at all"), "signed": signed, "empty": nil,
		"huge": append(env, make([]byte, DefaultASN1.MaxSize)...)} {
		if _, err := DecryptEnveloped(in, DefaultASN1, cert, key); !errors.Is(err, ErrCMS) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
