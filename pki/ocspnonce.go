package pki

// The OCSP nonce extension (RFC 6960 §4.4.1, sizes from RFC 8954 §2.1):
// a client may put a random nonce in its request to know that the answer
// was made for it (not replayed from a cache); a responder that honours it
// echoes it in the signed responseExtensions. golang.org/x/crypto/ocsp
// reads no request extensions and writes no response extensions, so both
// are done here: the request's extensions are read with cryptobyte (after
// ParseRequest accepted the request, within MaxOCSPRequest), and the
// answer is built by ocsp.CreateResponse with a signer that does not sign,
// the extension added to its ResponseData, and the result signed once
// with the CA key.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// OIDOCSPNonce is id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
var OIDOCSPNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

// Nonce sizes (RFC 8954 §2.1), of the nonce's octets.
const (
	// MaxEchoedOCSPNonce: nonces of 1 to this many octets are echoed.
	// RFC 8954 requires accepting 16 to 32; longer ones up to
	// MaxOCSPNonce are answered without the nonce (allowed by §2.1), so a
	// client cannot make Pomona sign large attacker-chosen values.
	MaxEchoedOCSPNonce = 32
	// MaxOCSPNonce: a request with a longer (or empty) nonce is refused
	// as malformedRequest (RFC 8954 §2.1: MUST reject).
	MaxOCSPNonce = 128
)

// OCSPAnswer is an answer to sign: the status template and, when the
// request carried a nonce Pomona echoes, that extension (signed into the
// response's responseExtensions; such an answer is for one request only
// and must never be reused for another).
type OCSPAnswer struct {
	ocsp.Response
	Nonce *pkix.Extension
}

// requestNonce returns the request's nonce extension to echo (nil: none,
// or one too long to echo), or an *OCSPError (malformedRequest) for a
// request whose extensions do not parse, that repeats the nonce, or whose
// nonce is empty or longer than MaxOCSPNonce.
func requestNonce(der []byte) (*pkix.Extension, error) {
	bad := func(why string) error {
		return &OCSPError{Response: ocsp.MalformedRequestErrorResponse, Reason: "request extensions: " + why}
	}
	in := cryptobyte.String(der)
	var req, tbs cryptobyte.String
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !req.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, bad("not an OCSPRequest")
	}
	if !tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || // version
		!tbs.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) || // requestorName
		!tbs.SkipASN1(cbasn1.SEQUENCE) { // requestList
		return nil, bad("malformed TBSRequest")
	}
	var wrapped cryptobyte.String
	var present bool
	if !tbs.ReadOptionalASN1(&wrapped, &present, cbasn1.Tag(2).Constructed().ContextSpecific()) {
		return nil, bad("malformed requestExtensions")
	}
	if !present {
		return nil, nil
	}
	var exts cryptobyte.String
	if !wrapped.ReadASN1(&exts, cbasn1.SEQUENCE) || !wrapped.Empty() {
		return nil, bad("malformed requestExtensions")
	}
	var nonce *pkix.Extension
	for !exts.Empty() {
		var ext, val cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&oid) {
			return nil, bad("malformed Extension")
		}
		critical := false
		if ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical) {
			return nil, bad("malformed Extension")
		}
		if !ext.ReadASN1(&val, cbasn1.OCTET_STRING) || !ext.Empty() {
			return nil, bad("malformed Extension")
		}
		if !oid.Equal(OIDOCSPNonce) {
			continue // RFC 6960 §4.4: unrecognised request extensions are ignored
		}
		if nonce != nil {
			return nil, bad("the nonce appears twice")
		}
		nonce = &pkix.Extension{Id: OIDOCSPNonce, Value: append([]byte(nil), val...)}
	}
	if nonce == nil {
		return nil, nil
	}
	// The value is the DER of Nonce ::= OCTET STRING (RFC 8954 §2.1);
	// some older clients put the octets there bare: measure what is there.
	n := len(nonce.Value)
	v := cryptobyte.String(nonce.Value)
	var inner cryptobyte.String
	if v.ReadASN1(&inner, cbasn1.OCTET_STRING) && v.Empty() {
		n = len(inner)
	}
	switch {
	case n < 1 || n > MaxOCSPNonce:
		return nil, bad(fmt.Sprintf("a nonce of %d octets (1–%d)", n, MaxOCSPNonce))
	case n > MaxEchoedOCSPNonce:
		return nil, nil
	}
	return nonce, nil
}

// noSigner builds the unsigned structure of a response: it signs nothing.
type noSigner struct{ pub crypto.PublicKey }

func (s noSigner) Public() crypto.PublicKey                                { return s.pub }
func (noSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return nil, nil }

// The ASN.1 of a response (RFC 6960 §4.2.1), as far as the nonce needs:
// everything else is kept as ocsp.CreateResponse encoded it.
type responseASN1 struct {
	Status   asn1.Enumerated
	Response responseBytes `asn1:"explicit,tag:0,optional"`
}

type responseBytes struct {
	ResponseType asn1.ObjectIdentifier
	Response     []byte
}

type basicResponse struct {
	TBSResponseData    asn1.RawValue
	SignatureAlgorithm asn1.RawValue
	Signature          asn1.BitString
	Certificates       []asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

// signWithNonce signs tmpl with ext in the ResponseData's
// responseExtensions ([1] EXPLICIT Extensions).
func (ca *CA) signWithNonce(tmpl ocsp.Response, ext pkix.Extension) ([]byte, error) {
	unsigned, err := ocsp.CreateResponse(ca.Cert, ca.Cert, tmpl, noSigner{ca.Key.Public()})
	if err != nil {
		return nil, err
	}
	var outer responseASN1
	if rest, err := asn1.Unmarshal(unsigned, &outer); err != nil || len(rest) > 0 {
		return nil, errors.New("ocsp: cannot read the unsigned response")
	}
	var basic basicResponse
	if rest, err := asn1.Unmarshal(outer.Response.Response, &basic); err != nil || len(rest) > 0 {
		return nil, errors.New("ocsp: cannot read the unsigned basic response")
	}
	exts, err := asn1.Marshal([]pkix.Extension{ext})
	if err != nil {
		return nil, err
	}
	extsField, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: exts})
	if err != nil {
		return nil, err
	}
	tbs, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true,
		Bytes: append(append([]byte(nil), basic.TBSResponseData.Bytes...), extsField...)})
	if err != nil {
		return nil, err
	}
	h, err := ocspHash(ca.Key.Public())
	if err != nil {
		return nil, err
	}
	d := h.New()
	d.Write(tbs)
	sig, err := ca.Key.Sign(rand.Reader, d.Sum(nil), h)
	if err != nil {
		return nil, err
	}
	basic.TBSResponseData = asn1.RawValue{FullBytes: tbs}
	basic.Signature = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	if outer.Response.Response, err = asn1.Marshal(basic); err != nil {
		return nil, err
	}
	return asn1.Marshal(outer)
}

// ocspHash is the digest ocsp.CreateResponse chose for the CA's key (its
// signature algorithm is in the unsigned response): SHA-256 for RSA and
// P-256, SHA-384 for P-384, SHA-512 for P-521.
func ocspHash(pub crypto.PublicKey) (crypto.Hash, error) {
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		switch k.Curve {
		case elliptic.P256():
			return crypto.SHA256, nil
		case elliptic.P384():
			return crypto.SHA384, nil
		case elliptic.P521():
			return crypto.SHA512, nil
		}
		return 0, errors.New("ocsp: unsupported curve")
	}
	return crypto.SHA256, nil
}
