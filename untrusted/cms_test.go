package untrusted

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/scep"
	"github.com/smallstep/scep/x509util"

	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

func selfSigned(t testing.TB, cn string) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

// A genuine request (as devicesim and Apple clients build it) parses,
// decrypts, and yields its CSR and challenge.
func TestParseSCEPGenuine(t *testing.T) {
	ra, raKey := selfSigned(t, "RA")
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	csrDER, err := x509util.CreateCertificateRequest(rand.Reader, &x509util.CertificateRequest{
		CertificateRequest: x509.CertificateRequest{Subject: pkix.Name{CommonName: "MDM Identity"}}, ChallengePassword: "s3cret"}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(csrDER)
	signer, signerKey := selfSigned(t, "MDM Identity")
	msg, err := scep.NewCSRRequest(csr, &scep.PKIMessage{MessageType: scep.PKCSReq, Recipients: []*x509.Certificate{ra}, SignerCert: signer, SignerKey: signerKey})
	if err != nil {
		t.Fatal(err)
	}
	req, err := ParseSCEP(msg.Raw, DefaultASN1)
	if err != nil {
		t.Fatal(err)
	}
	if !req.Signer.Equal(signer) || req.MessageType != scep.PKCSReq {
		t.Fatal("signer or type")
	}
	if err := req.Decrypt(ra, raKey); err != nil {
		t.Fatal(err)
	}
	if req.ChallengePassword != "s3cret" || req.CSR.Subject.CommonName != "MDM Identity" {
		t.Fatalf("CSR %+v", req.CSRReqMessage)
	}
}

func TestParseSCEPRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		err  string
	}{
		// Finding 1 inside the signature: the signed content (an
		// EnvelopedData in a real request) is the hostile BER. The outer
		// message is valid and verifies; before, DecryptPKIEnvelope's
		// pkcs7.Parse of the content never returned.
		{"hostile enveloped content", untrustedtest.SCEPWithContent(t, untrustedtest.Read(t, untrustedtest.NestedBER), 1, SHA256), "the enveloped content"},
		{"two signers", untrustedtest.SCEPWithContent(t, []byte{0x05, 0x00}, 2, SHA256), "2 SignerInfos"},
		{"SHA-384 digest", untrustedtest.SCEPWithContent(t, []byte{0x05, 0x00}, 1, SHA384), "not accepted"},
		{"hostile outer message", untrustedtest.Read(t, untrustedtest.NestedBER), "runs past its parent"},
		{"not CMS", []byte("hello"), "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			untrustedtest.Bounded(t, time.Second, 16<<20, func() {
				var req *SCEPRequest
				if req, err = ParseSCEP(tc.in, DefaultASN1); err == nil {
					ra, raKey := selfSigned(t, "RA")
					err = req.Decrypt(ra, raKey)
				}
			})
			if !errors.Is(err, ErrCMS) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}
