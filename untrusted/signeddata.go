package untrusted

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrSigningTime: the signature's signing-time attribute (RFC 5652 §11.3)
// lies outside the signer certificate's validity. Wrapped with ErrCMS.
var ErrSigningTime = errors.New("the signing time is outside the signer certificate's validity")

// SignedData is a CMS SignedData (RFC 5652 §5) with exactly one
// SignerInfo, parsed by ParseSignedData: only what verifying the one
// signature needs. Its byte slices point into the DER ParseSignedData
// made; they are not copied again.
type SignedData struct {
	// Certificates are the certificates the message carries (§5.1
	// certificates), parsed.
	Certificates []*x509.Certificate
	// Content is the encapsulated content (§5.2 eContent, an OCTET
	// STRING); nil when the signature is detached.
	Content []byte
	// HasContent reports an eContent, even an empty one.
	HasContent bool

	// The one SignerInfo (§5.3).
	issuer []byte   // IssuerAndSerialNumber.issuer, the DER Name
	serial *big.Int // IssuerAndSerialNumber.serialNumber
	// digestAlg and sigAlg may be shared values (readOID): never modified.
	digestAlg, sigAlg asn1.ObjectIdentifier
	// signedAttrs is the DER of the signed attributes with the SET OF tag
	// (what the signature covers, §5.4); nil when there are none.
	signedAttrs    []byte
	messageDigest  []byte
	signingTime    time.Time
	hasSigningTime bool
	signature      []byte
}

// Object identifiers of RFC 5652 (content types, attributes) and of the
// signature algorithms a SignerInfo may name (RFC 3279, RFC 4055, RFC 5758).
var (
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningTime   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}

	oidRSA          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSASHA1      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidRSASHA256    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidRSASHA384    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidRSASHA512    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECDSASHA1    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSASHA256  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidECDSAP256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidECDSAP384    = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidECDSAP521    = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
	signedAttrsTag  = cbasn1.Tag(0).Constructed().ContextSpecific()
	certificatesTag = cbasn1.Tag(0).Constructed().ContextSpecific()
	crlsTag         = cbasn1.Tag(1).Constructed().ContextSpecific()
	unsignedTag     = cbasn1.Tag(1).Constructed().ContextSpecific()
	explicitTag0    = cbasn1.Tag(0).Constructed().ContextSpecific()
)

// ParseSignedData parses a CMS ContentInfo holding a SignedData (RFC 5652
// §3, §5) from untrusted bytes for verifying its one signature. The input
// is first checked and converted to DER by ToDER within lim (the same
// linear, bounded walk ParseCMS does); the DER is then read once, in
// place, with cryptobyte: no BER pass, no reflection. The SignedData must
// carry exactly one SignerInfo (refused before anything is hashed), whose
// digest algorithm is one of allowed, identified by issuer and serial
// number (§5.3 sid: the subjectKeyIdentifier choice is refused, as
// smallstep/pkcs7 did), with an at most single-valued messageDigest and
// signingTime among its signed attributes. CRLs and unsigned attributes
// are skipped; every certificate must parse (x509.ParseCertificate).
// Errors wrap ErrCMS.
func ParseSignedData(in []byte, lim ASN1Limits, allowed ...asn1.ObjectIdentifier) (*SignedData, error) {
	return ParseSignedDataWith(in, lim, nil, allowed...)
}

// CertParser parses one certificate from DER, as x509.ParseCertificate
// does (the same result and errors for the same bytes). It may keep der
// only by copying it: der points into a buffer of the request.
type CertParser func(der []byte) (*x509.Certificate, error)

// ParseSignedDataWith is ParseSignedData with the certificates parsed by
// parse (nil: x509.ParseCertificate), e.g. one that remembers the
// certificates it parsed. The bounds and checks are the same.
func ParseSignedDataWith(in []byte, lim ASN1Limits, parse CertParser, allowed ...asn1.ObjectIdentifier) (*SignedData, error) {
	if parse == nil {
		parse = x509.ParseCertificate
	}
	der, err := ToDER(in, lim)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCMS, err)
	}
	sd, err := parseSignedDataDER(der, parse)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCMS, err)
	}
	for _, a := range allowed {
		if sd.digestAlg.Equal(a) {
			return sd, nil
		}
	}
	return nil, fmt.Errorf("%w: digest algorithm %v is not accepted", ErrCMS, sd.digestAlg)
}

func parseSignedDataDER(der []byte, parse CertParser) (*SignedData, error) {
	in := cryptobyte.String(der)
	var ci, content cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("not a ContentInfo")
	}
	if !readOID(&ci, &ct) || !ct.Equal(oidSignedData) {
		return nil, errors.New("not a SignedData")
	}
	if !ci.ReadASN1(&content, explicitTag0) || !ci.Empty() {
		return nil, errors.New("ContentInfo: malformed content")
	}
	var s cryptobyte.String
	if !content.ReadASN1(&s, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, errors.New("SignedData: not a SEQUENCE")
	}
	var version int
	var digestAlgs, encap cryptobyte.String
	if !s.ReadASN1Integer(&version) || !s.ReadASN1(&digestAlgs, cbasn1.SET) || !s.ReadASN1(&encap, cbasn1.SEQUENCE) {
		return nil, errors.New("SignedData: malformed version, digestAlgorithms or encapContentInfo")
	}
	sd := &SignedData{}
	var eType asn1.ObjectIdentifier
	if !readOID(&encap, &eType) {
		return nil, errors.New("encapContentInfo: malformed eContentType")
	}
	if !encap.Empty() {
		var e, octets cryptobyte.String
		if !encap.ReadASN1(&e, explicitTag0) || !encap.Empty() || !e.ReadASN1(&octets, cbasn1.OCTET_STRING) || !e.Empty() {
			return nil, errors.New("encapContentInfo: eContent is not one primitive OCTET STRING")
		}
		sd.Content, sd.HasContent = octets, true
	}
	if s.PeekASN1Tag(certificatesTag) {
		var certs cryptobyte.String
		if !s.ReadASN1(&certs, certificatesTag) {
			return nil, errors.New("malformed certificates")
		}
		for !certs.Empty() {
			var raw cryptobyte.String
			if !certs.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
				return nil, errors.New("certificates: only X.509 certificates are accepted")
			}
			c, err := parse(raw)
			if err != nil {
				return nil, fmt.Errorf("certificates: %v", err)
			}
			sd.Certificates = append(sd.Certificates, c)
		}
	}
	if s.PeekASN1Tag(crlsTag) && !s.SkipASN1(crlsTag) {
		return nil, errors.New("malformed crls")
	}
	var signers cryptobyte.String
	if !s.ReadASN1(&signers, cbasn1.SET) || !s.Empty() {
		return nil, errors.New("SignedData: malformed signerInfos")
	}
	var si cryptobyte.String
	n := 0
	for rest := signers; !rest.Empty(); n++ {
		var e cryptobyte.String
		if !rest.ReadASN1(&e, cbasn1.SEQUENCE) {
			return nil, errors.New("signerInfos: malformed SignerInfo")
		}
		si = e
	}
	if n != 1 {
		return nil, fmt.Errorf("%d SignerInfos (exactly one is accepted)", n)
	}
	if err := sd.parseSignerInfo(si); err != nil {
		return nil, fmt.Errorf("SignerInfo: %v", err)
	}
	return sd, nil
}

func (sd *SignedData) parseSignerInfo(si cryptobyte.String) error {
	var version int
	var sid, issuer, digestAlg, sigAlg cryptobyte.String
	if !si.ReadASN1Integer(&version) {
		return errors.New("malformed version")
	}
	if !si.ReadASN1(&sid, cbasn1.SEQUENCE) {
		return errors.New("sid is not an IssuerAndSerialNumber")
	}
	sd.serial = new(big.Int)
	if !sid.ReadASN1Element(&issuer, cbasn1.SEQUENCE) || !sid.ReadASN1Integer(sd.serial) || !sid.Empty() {
		return errors.New("malformed IssuerAndSerialNumber")
	}
	sd.issuer = issuer
	if !si.ReadASN1(&digestAlg, cbasn1.SEQUENCE) || !readOID(&digestAlg, &sd.digestAlg) {
		return errors.New("malformed digestAlgorithm")
	}
	if si.PeekASN1Tag(signedAttrsTag) {
		var attrsElem, attrs cryptobyte.String
		if !si.ReadASN1Element(&attrsElem, signedAttrsTag) {
			return errors.New("malformed signedAttrs")
		}
		// The signature covers the attributes' DER with the SET OF tag
		// in place of the [0] IMPLICIT one (RFC 5652 §5.4).
		sd.signedAttrs = append([]byte{0x31}, attrsElem[1:]...)
		if !attrsElem.ReadASN1(&attrs, signedAttrsTag) {
			return errors.New("malformed signedAttrs")
		}
		if err := sd.parseSignedAttrs(attrs); err != nil {
			return err
		}
	}
	if !si.ReadASN1(&sigAlg, cbasn1.SEQUENCE) || !readOID(&sigAlg, &sd.sigAlg) {
		return errors.New("malformed signatureAlgorithm")
	}
	var sig cryptobyte.String
	if !si.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return errors.New("malformed signature")
	}
	sd.signature = sig
	if si.PeekASN1Tag(unsignedTag) && !si.SkipASN1(unsignedTag) {
		return errors.New("malformed unsignedAttrs")
	}
	if !si.Empty() {
		return errors.New("trailing data")
	}
	return nil
}

// parseSignedAttrs reads the messageDigest and signingTime attributes
// (RFC 5652 §11.2, §11.3): each at most once, with exactly one value.
func (sd *SignedData) parseSignedAttrs(attrs cryptobyte.String) error {
	var seenDigest bool
	for !attrs.Empty() {
		var attr, values, value cryptobyte.String
		var typ asn1.ObjectIdentifier
		if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !readOID(&attr, &typ) || !attr.ReadASN1(&values, cbasn1.SET) || !attr.Empty() {
			return errors.New("malformed signed attribute")
		}
		switch {
		case typ.Equal(oidMessageDigest):
			if seenDigest || !values.ReadASN1(&value, cbasn1.OCTET_STRING) || !values.Empty() {
				return errors.New("messageDigest must be one OCTET STRING, once")
			}
			sd.messageDigest, seenDigest = value, true
		case typ.Equal(oidSigningTime):
			var raw cryptobyte.String
			if sd.hasSigningTime || !values.ReadAnyASN1Element(&raw, new(cbasn1.Tag)) || !values.Empty() {
				return errors.New("signingTime must be one value, once")
			}
			// encoding/asn1 reads UTCTime and GeneralizedTime exactly as
			// smallstep/pkcs7 did; utcTimeZ reads the usual form to the
			// same value without it.
			if t, ok := utcTimeZ(raw); ok {
				sd.signingTime = t
			} else if rest, err := asn1.Unmarshal(raw, &sd.signingTime); err != nil || len(rest) != 0 {
				return errors.New("malformed signingTime")
			}
			sd.hasSigningTime = true
		}
	}
	if !seenDigest {
		return errors.New("signed attributes without a messageDigest")
	}
	return nil
}

// Verify checks the one signature over content (the encapsulated content,
// or the detached content the caller supplies) and returns the signer
// certificate, found among Certificates by issuer and serial number. With
// signed attributes, their messageDigest must equal the content's digest
// (compared in constant time) and the signature covers the attributes;
// their signingTime, when present, must lie within the signer's validity
// unless anyTime (then ErrSigningTime). The certificate's issuer is not
// judged here. Errors wrap ErrCMS.
func (sd *SignedData) Verify(content []byte, anyTime bool) (*x509.Certificate, error) {
	signer, err := sd.Signer()
	if err != nil {
		return nil, err
	}
	signed := content
	if sd.signedAttrs != nil {
		var buf [sha512.Size]byte
		sum, err := digest(buf[:0], sd.digestAlg, content)
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare(sd.messageDigest, sum) != 1 {
			return nil, fmt.Errorf("%w: the message digest does not match the content", ErrCMS)
		}
		if sd.hasSigningTime && !anyTime && (sd.signingTime.After(signer.NotAfter) || sd.signingTime.Before(signer.NotBefore)) {
			return nil, fmt.Errorf("%w: %w: signing time %s, certificate valid %s to %s", ErrCMS, ErrSigningTime,
				sd.signingTime.Format(time.RFC3339), signer.NotBefore.Format(time.RFC3339), signer.NotAfter.Format(time.RFC3339))
		}
		signed = sd.signedAttrs
	}
	alg, err := signatureAlgorithm(sd.sigAlg, sd.digestAlg)
	if err != nil {
		return nil, err
	}
	if err := signer.CheckSignature(alg, signed, sd.signature); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCMS, err)
	}
	return signer, nil
}

// Signer returns the certificate the one SignerInfo names (by issuer and
// serial number) among Certificates, WITHOUT checking the signature: it
// says who claims to have signed, for deciding whether to read more of a
// request before Verify. Errors wrap ErrCMS.
func (sd *SignedData) Signer() (*x509.Certificate, error) {
	for _, c := range sd.Certificates {
		if c.SerialNumber.Cmp(sd.serial) == 0 && bytes.Equal(c.RawIssuer, sd.issuer) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: no certificate for the signer", ErrCMS)
}

// digest appends content's digest with alg to dst: the fixed-size sums,
// which a caller's array holds without allocating (hash.Hash's New and
// Sum(nil) cost two allocations a request).
func digest(dst []byte, alg asn1.ObjectIdentifier, content []byte) ([]byte, error) {
	switch {
	case alg.Equal(SHA1):
		s := sha1.Sum(content)
		return append(dst, s[:]...), nil
	case alg.Equal(SHA256):
		s := sha256.Sum256(content)
		return append(dst, s[:]...), nil
	case alg.Equal(SHA384):
		s := sha512.Sum384(content)
		return append(dst, s[:]...), nil
	case alg.Equal(SHA512):
		s := sha512.Sum512(content)
		return append(dst, s[:]...), nil
	}
	return nil, fmt.Errorf("%w: digest algorithm %v is not supported", ErrCMS, alg)
}

// signatureAlgorithm maps a SignerInfo's signatureAlgorithm and
// digestAlgorithm to Go's, as smallstep/pkcs7 does for RSA and ECDSA (DSA,
// which Go no longer verifies, is refused).
func signatureAlgorithm(sig, digest asn1.ObjectIdentifier) (x509.SignatureAlgorithm, error) {
	byDigest := func(sha1, sha256, sha384, sha512 x509.SignatureAlgorithm) (x509.SignatureAlgorithm, error) {
		switch {
		case digest.Equal(SHA1):
			return sha1, nil
		case digest.Equal(SHA256):
			return sha256, nil
		case digest.Equal(SHA384):
			return sha384, nil
		case digest.Equal(SHA512):
			return sha512, nil
		}
		return 0, fmt.Errorf("%w: digest %v is not supported with signature algorithm %v", ErrCMS, digest, sig)
	}
	switch {
	case sig.Equal(oidECDSASHA1):
		return x509.ECDSAWithSHA1, nil
	case sig.Equal(oidECDSASHA256):
		return x509.ECDSAWithSHA256, nil
	case sig.Equal(oidECDSASHA384):
		return x509.ECDSAWithSHA384, nil
	case sig.Equal(oidECDSASHA512):
		return x509.ECDSAWithSHA512, nil
	case sig.Equal(oidRSA), sig.Equal(oidRSASHA1), sig.Equal(oidRSASHA256), sig.Equal(oidRSASHA384), sig.Equal(oidRSASHA512):
		return byDigest(x509.SHA1WithRSA, x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA)
	case sig.Equal(oidECDSAP256), sig.Equal(oidECDSAP384), sig.Equal(oidECDSAP521):
		return byDigest(x509.ECDSAWithSHA1, x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512)
	}
	return 0, fmt.Errorf("%w: signature algorithm %v is not supported", ErrCMS, sig)
}
