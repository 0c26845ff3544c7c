package app

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/pomona-mdm/pomona/pki"
)

// nonceReq is ocspReq with a nonce extension of the given octets.
func nonceReq(t *testing.T, ca *pki.CA, serial int64, nonce []byte) []byte {
	t.Helper()
	var outer struct{ TBS asn1.RawValue }
	if _, err := asn1.Unmarshal(ocspReq(t, ca, serial), &outer); err != nil {
		t.Fatal(err)
	}
	v, _ := asn1.Marshal(nonce)
	seq, _ := asn1.Marshal([]pkix.Extension{{Id: pki.OIDOCSPNonce, Value: v}})
	field, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: seq})
	tbs, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: append(append([]byte(nil), outer.TBS.Bytes...), field...)})
	out, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: tbs})
	return out
}

// TestOCSPNonceAnswersAreNotReused: an answer echoing a request's nonce
// is signed for that request (the per-serial reuse would send another
// request's nonce back, which a client checking nonces refuses), and is
// not remembered for requests without one.
func TestOCSPNonceAnswersAreNotReused(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA("Test CA", pki.ECDSAP256, now)
	if err != nil {
		t.Fatal(err)
	}
	signer := &countingSigner{Signer: ca.Key}
	ca.Key = signer
	r := &Revocation{Store: &fakeRevocations{}, CA: ca, Now: func() time.Time { return now }}
	ctx := context.Background()
	for i, nonce := range [][]byte{bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)} {
		der, err := r.OCSP(ctx, nonceReq(t, ca, 10, nonce))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ocsp.ParseResponseForCert(der, &x509.Certificate{SerialNumber: big.NewInt(10)}, ca.Cert); err != nil {
			t.Fatal(err)
		}
		want, _ := asn1.Marshal(nonce)
		if !bytes.Contains(der, want) {
			t.Fatalf("answer %d does not carry its request's nonce", i)
		}
	}
	if n := signer.n.Load(); n != 2 {
		t.Fatalf("two requests with nonces: %d signatures, want 2", n)
	}
	// A request without a nonce is not answered with a nonce answer, and
	// its own answer is reused as before.
	oid, _ := asn1.Marshal(pki.OIDOCSPNonce)
	for i := 0; i < 3; i++ {
		der, err := r.OCSP(ctx, ocspReq(t, ca, 10))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(der, oid) {
			t.Fatal("an answer without a nonce request carries a nonce")
		}
	}
	if n := signer.n.Load(); n != 3 {
		t.Fatalf("then three requests without: %d signatures in all, want 3", n)
	}
}
