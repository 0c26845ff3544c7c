package untrusted

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"
)

// ErrCMS wraps every refusal of a CMS (RFC 5652) or SCEP (RFC 8894)
// message. A refusal for size or structure also wraps ErrASN1.
var ErrCMS = errors.New("unacceptable CMS message")

// Digest algorithms (RFC 5754) a SignerInfo may name.
var (
	SHA1   = pkcs7.OIDDigestAlgorithmSHA1
	SHA256 = pkcs7.OIDDigestAlgorithmSHA256
	SHA384 = pkcs7.OIDDigestAlgorithmSHA384
	SHA512 = pkcs7.OIDDigestAlgorithmSHA512
)

// ParseCMS parses a CMS ContentInfo (RFC 5652 §3; SignedData §5 or
// EnvelopedData §6) from untrusted bytes. The input is first checked and
// converted to DER by ToDER within lim, so smallstep/pkcs7's own BER
// converter, which re-reads overlapping children at every level
// (exponential time and memory on a few hundred bytes of nested definite
// lengths), only ever sees DER whose children fit their parents. The
// content of a SignedData is not parsed. Errors wrap ErrCMS.
func ParseCMS(in []byte, lim ASN1Limits) (*pkcs7.PKCS7, error) {
	der, err := ToDER(in, lim)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCMS, err)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCMS, err)
	}
	return p7, nil
}

// OneSigner checks, before anything is hashed, that a parsed SignedData
// has exactly one SignerInfo (RFC 5652 §5.3) and that it names one of the
// digest algorithms in allowed. Verifying then hashes the content once.
// Errors wrap ErrCMS.
func OneSigner(p7 *pkcs7.PKCS7, allowed ...asn1.ObjectIdentifier) error {
	if n := len(p7.Signers); n != 1 {
		return fmt.Errorf("%w: %d SignerInfos (exactly one is accepted)", ErrCMS, n)
	}
	alg := p7.Signers[0].DigestAlgorithm.Algorithm
	for _, a := range allowed {
		if alg.Equal(a) {
			return nil
		}
	}
	return fmt.Errorf("%w: digest algorithm %v is not accepted", ErrCMS, alg)
}

// SCEPDigests are the digest algorithms accepted in a SCEP request's
// SignerInfo: what GetCACaps advertises (SHA-1, SHA-256) and SHA-512,
// which RFC 8894 §3.5.2 lists.
var SCEPDigests = []asn1.ObjectIdentifier{SHA1, SHA256, SHA512}

// SCEPRequest is a SCEP PKIMessage (RFC 8894 §3.2) whose outer SignedData
// and inner EnvelopedData have both been bounded.
type SCEPRequest struct {
	*scep.PKIMessage
	// Signer is the certificate that signed the message: the requester's
	// self-signed or current identity certificate.
	Signer *x509.Certificate
}

// ParseSCEP parses and verifies a SCEP PKIOperation message from untrusted
// bytes. smallstep/scep parses the outer SignedData and, on decryption,
// the signed content (an EnvelopedData) with pkcs7.Parse; so the outer
// message is converted to DER by ToDER within lim, must have exactly one
// SignerInfo with a digest in SCEPDigests (checked before the signature is
// verified), and its content must pass CheckBER within lim before
// scep.ParsePKIMessage sees anything. Errors wrap ErrCMS.
func ParseSCEP(in []byte, lim ASN1Limits) (*SCEPRequest, error) {
	der, err := ToDER(in, lim)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCMS, err)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCMS, err)
	}
	if err := OneSigner(p7, SCEPDigests...); err != nil {
		return nil, err
	}
	if len(p7.Content) == 0 {
		return nil, fmt.Errorf("%w: the SCEP message has no content", ErrCMS)
	}
	// The content reaches pkcs7.Parse (in DecryptPKIEnvelope) as it is:
	// it is signed, so it cannot be normalised; CheckBER guarantees that
	// every child fits its parent, which keeps pkcs7's converter linear.
	if err := CheckBER(p7.Content, lim); err != nil {
		return nil, fmt.Errorf("%w: the enveloped content: %w", ErrCMS, err)
	}
	msg, err := scep.ParsePKIMessage(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCMS, err)
	}
	return &SCEPRequest{PKIMessage: msg, Signer: p7.GetOnlySigner()}, nil
}

// Decrypt decrypts the request's EnvelopedData (already bounded by
// ParseSCEP) with the RA's certificate and key, filling CSRReqMessage.
func (r *SCEPRequest) Decrypt(cert *x509.Certificate, key crypto.PrivateKey) error {
	return r.DecryptPKIEnvelope(cert, key)
}
