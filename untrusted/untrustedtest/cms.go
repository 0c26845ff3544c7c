package untrustedtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

// SelfSigned returns a P-256 certificate and key anyone could make.
func SelfSigned(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// SCEP attribute OIDs (RFC 8894 §3.2.1).
var (
	oidTransactionID = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}
	oidMessageType   = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 2}
	oidSenderNonce   = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 5}
)

// SCEPWithContent signs content as a SCEP PKCSReq (RFC 8894 §3.2) with
// signers SignerInfos of digest, the way anyone can: with a self-signed
// certificate, which SCEP allows for a first request. The signature
// verifies, so smallstep/scep goes on to parse content as the
// EnvelopedData.
func SCEPWithContent(t testing.TB, content []byte, signers int, digest asn1.ObjectIdentifier) []byte {
	t.Helper()
	cert, key := SelfSigned(t, "attacker")
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		t.Fatal(err)
	}
	sd.SetDigestAlgorithm(digest)
	attrs := []pkcs7.Attribute{
		{Type: oidTransactionID, Value: "1234"},
		{Type: oidMessageType, Value: "19"},
		{Type: oidSenderNonce, Value: []byte("0123456789abcdef")},
	}
	for range signers {
		if err := sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{ExtraSignedAttributes: attrs}); err != nil {
			t.Fatal(err)
		}
	}
	der, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// DetachedRepeated signs body detached (CMS SignedData, RFC 5652 §5) with
// key and repeats the SignerInfo n times, as the attacker of finding 7
// did: every copy verifies, so a verifier that checks all of them hashes
// body n times.
func DetachedRepeated(t testing.TB, body []byte, c *x509.Certificate, k crypto.PrivateKey, n int) []byte {
	t.Helper()
	sd, err := pkcs7.NewSignedData(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.AddSigner(c, k, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	// ContentInfo{OID, [0] EXPLICIT SignedData{..., signerInfos SET}}.
	var ci struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		t.Fatal(err)
	}
	var seq asn1.RawValue
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &seq); err != nil {
		t.Fatal(err)
	}
	var fields []asn1.RawValue
	for rest := seq.Bytes; len(rest) > 0; {
		var f asn1.RawValue
		if rest, err = asn1.Unmarshal(rest, &f); err != nil {
			t.Fatal(err)
		}
		fields = append(fields, f)
	}
	last := &fields[len(fields)-1] // signerInfos
	last.Bytes, last.FullBytes = bytes.Repeat(last.Bytes, n), nil
	var inner []byte
	for _, f := range fields {
		b, err := asn1.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		inner = append(inner, b...)
	}
	seq.Bytes, seq.FullBytes = inner, nil
	sdDER, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	out, err := asn1.Marshal(struct {
		Type    asn1.ObjectIdentifier
		Content asn1.RawValue
	}{ci.Type, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sdDER}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
