package untrusted

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/smallstep/pkcs7"
)

// ErrNotForKey: a CMS EnvelopedData names no recipient with the given
// certificate (it was encrypted to another key).
var ErrNotForKey = errors.New("the message is not encrypted to this key")

// oidEnvelopedData is id-envelopedData (RFC 5652 §6.1).
var oidEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}

// The parts of an EnvelopedData needed to find its recipients (RFC 5652
// §6.1, §6.2.1: KeyTransRecipientInfo with IssuerAndSerialNumber, the form
// Apple's server tokens and smallstep/pkcs7 use).
type envelope struct {
	ContentType asn1.ObjectIdentifier
	Content     struct {
		Version    int
		Recipients []keyTransRecipient `asn1:"set"`
		Rest       asn1.RawValue
	} `asn1:"explicit,tag:0"`
}

type keyTransRecipient struct {
	Version int
	ID      struct {
		Issuer asn1.RawValue
		Serial *big.Int
	}
	Algorithm    pkix.AlgorithmIdentifier
	EncryptedKey []byte
}

// DecryptEnveloped decrypts a CMS EnvelopedData (RFC 5652 §6) from
// untrusted bytes with cert and its key: the input is converted to DER by
// ToDER within lim before anything else reads it, its recipients are
// read with encoding/asn1 and must include cert (issuer and serial
// number), and only then does smallstep/pkcs7 parse and decrypt it (RSA
// key transport, PKCS #1 v1.5 or OAEP). No recipient for cert gives
// ErrNotForKey; other refusals wrap ErrCMS.
func DecryptEnveloped(in []byte, lim ASN1Limits, cert *x509.Certificate, key crypto.PrivateKey) ([]byte, error) {
	der, err := ToDER(in, lim)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCMS, err)
	}
	var env envelope
	if rest, err := asn1.Unmarshal(der, &env); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("%w: not a CMS EnvelopedData with key-transport recipients", ErrCMS)
	}
	if !env.ContentType.Equal(oidEnvelopedData) {
		return nil, fmt.Errorf("%w: content type %v is not EnvelopedData", ErrCMS, env.ContentType)
	}
	found := false
	for _, r := range env.Content.Recipients {
		if r.ID.Serial != nil && r.ID.Serial.Cmp(cert.SerialNumber) == 0 && bytes.Equal(r.ID.Issuer.FullBytes, cert.RawIssuer) {
			found = true
		}
	}
	if !found {
		return nil, ErrNotForKey
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCMS, err)
	}
	out, err := p7.Decrypt(cert, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCMS, err)
	}
	return out, nil
}
