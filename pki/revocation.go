package pki

// Revocation status of the certificates Pomona's CA issues: a CRL
// (RFC 5280 §5) and OCSP answers (RFC 6960), both signed by the CA itself
// (the CA certificate has cRLSign; an OCSP response signed by the issuing
// CA needs no delegated responder certificate, RFC 6960 §4.2.2.2). The
// revocation records come from the store (store.RevocationStore); this
// file only builds and signs.

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/pomona-mdm/pomona/store"
)

// RevocationURLs are where relying parties learn the status of a user
// certificate: the CRL distribution point (RFC 5280 §4.2.1.13) and the
// OCSP responder in the Authority Information Access extension (RFC 5280
// §4.2.2.1). Empty: the extension is left out.
type RevocationURLs struct {
	CRL  string
	OCSP string
}

// Validity of what the revocation service signs.
const (
	// CRLValidity is a CRL's nextUpdate − thisUpdate.
	CRLValidity = 24 * time.Hour
	// CRLRefresh: a CRL older than this is made again even when nothing
	// was revoked, so nextUpdate stays at least CRLValidity − CRLRefresh
	// ahead of any client that fetched it.
	CRLRefresh = time.Hour
	// OCSPValidity is an OCSP answer's nextUpdate − thisUpdate (clients
	// may cache it that long: a revocation shows in a new answer at once,
	// in a cached one after at most this).
	OCSPValidity = time.Hour
	// MaxOCSPRequest bounds the DER of an OCSP request before it is
	// parsed (one CertID is about 80 bytes; a request with a signature
	// and its certificates is refused rather than parsed).
	MaxOCSPRequest = 4096
)

// ParseSerialHex reads a serial as SerialHex writes it.
func ParseSerialHex(s string) (*big.Int, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 || len(b) > 20 {
		return nil, fmt.Errorf("pki: %q is not a certificate serial", s)
	}
	return new(big.Int).SetBytes(b), nil
}

// CreateCRL signs a CRL (RFC 5280 §5, version 2, with the CRL number and
// the authority key identifier that x509.CreateRevocationList adds) that
// lists revoked, valid from now to now+CRLValidity. Entries whose serial
// cannot be read are skipped (they are not Pomona's).
func (ca *CA) CreateCRL(revoked []store.RevokedCert, number int64, now time.Time) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		sn, err := ParseSerialHex(r.Serial)
		if err != nil {
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: sn, RevocationTime: r.RevokedAt.UTC(), ReasonCode: r.Reason})
	}
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(number),
		ThisUpdate:                now.UTC(),
		NextUpdate:                now.Add(CRLValidity).UTC(),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
}

// CertStatusFunc looks a serial (hex) up: store.CertGood, CertRevoked
// (with its record) or CertUnknown.
type CertStatusFunc func(serial string) (string, *store.RevokedCert, error)

// ErrOCSPRequest is a request that is not one Pomona answers: the
// response to send is in OCSPError.Response.
type OCSPError struct {
	Response []byte // an unsigned OCSP error response (RFC 6960 §2.3)
	Reason   string
}

func (e *OCSPError) Error() string { return "ocsp: " + e.Reason }

// RespondOCSP answers one OCSP request (RFC 6960 §4.1, DER, at most
// MaxOCSPRequest bytes): malformedRequest when it does not parse,
// unauthorized when it asks about another issuer, else a response signed
// by the CA with the serial's status — good only for a certificate Pomona
// issued and has not revoked, revoked with its time and reason, unknown
// otherwise — valid from now to now+OCSPValidity. Errors: *OCSPError (send
// its Response), or the lookup's error (answer tryLater).
func (ca *CA) RespondOCSP(req []byte, lookup CertStatusFunc, now time.Time) ([]byte, error) {
	tmpl, err := ca.OCSPTemplate(req, lookup, now)
	if err != nil {
		return nil, err
	}
	return ca.SignOCSP(tmpl)
}

// SignOCSP signs an answer made by OCSPTemplate, with its nonce (if any)
// in the response's responseExtensions.
func (ca *CA) SignOCSP(tmpl *OCSPAnswer) ([]byte, error) {
	if tmpl.Nonce != nil {
		return ca.signWithNonce(tmpl.Response, *tmpl.Nonce)
	}
	return ocsp.CreateResponse(ca.Cert, ca.Cert, tmpl.Response, ca.Key)
}

// OCSPTemplate is RespondOCSP up to the signature: the answer to sign, or
// the same errors (also malformedRequest for a nonce extension that is
// empty, repeated or over MaxOCSPNonce octets). A nonce of up to
// MaxEchoedOCSPNonce octets is kept in the answer to be echoed (RFC 6960
// §4.4.1). Callers that bound or reuse signatures (app.Revocation) sign
// it themselves.
func (ca *CA) OCSPTemplate(req []byte, lookup CertStatusFunc, now time.Time) (*OCSPAnswer, error) {
	if len(req) == 0 || len(req) > MaxOCSPRequest {
		return nil, &OCSPError{Response: ocsp.MalformedRequestErrorResponse, Reason: fmt.Sprintf("a request of %d bytes (1–%d)", len(req), MaxOCSPRequest)}
	}
	r, err := ocsp.ParseRequest(req)
	if err != nil {
		return nil, &OCSPError{Response: ocsp.MalformedRequestErrorResponse, Reason: err.Error()}
	}
	nonce, err := requestNonce(req)
	if err != nil {
		return nil, err
	}
	if !ca.issued(r) {
		return nil, &OCSPError{Response: ocsp.UnauthorizedErrorResponse, Reason: "the request is about another issuer"}
	}
	serial := hex.EncodeToString(r.SerialNumber.Bytes())
	if r.SerialNumber.Sign() <= 0 {
		serial = ""
	}
	tmpl := OCSPAnswer{Response: ocsp.Response{Status: ocsp.Unknown, SerialNumber: r.SerialNumber, ThisUpdate: now.UTC().Truncate(time.Second),
		NextUpdate: now.Add(OCSPValidity).UTC().Truncate(time.Second)}, Nonce: nonce}
	if serial != "" {
		st, rc, err := lookup(serial)
		if err != nil {
			return nil, err
		}
		switch st {
		case store.CertGood:
			tmpl.Status = ocsp.Good
		case store.CertRevoked:
			tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, rc.RevokedAt.UTC().Truncate(time.Second), rc.Reason
		}
	}
	return &tmpl, nil
}

// issued reports whether the request's CertID names this CA (issuer name
// and key hashes with the request's hash algorithm, RFC 6960 §4.1.1).
func (ca *CA) issued(r *ocsp.Request) bool {
	switch r.HashAlgorithm {
	case crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return false
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(ca.Cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return false
	}
	h := r.HashAlgorithm.New()
	h.Write(ca.Cert.RawSubject)
	name := h.Sum(nil)
	h.Reset()
	h.Write(spki.PublicKey.RightAlign())
	key := h.Sum(nil)
	return bytes.Equal(name, r.IssuerNameHash) && bytes.Equal(key, r.IssuerKeyHash)
}
