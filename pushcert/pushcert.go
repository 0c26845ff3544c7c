// Package pushcert reads and checks the APNs push certificate Pomona uses to
// wake enrolled devices: from a PEM certificate and key or a PKCS #12 file,
// its topic (the UID attribute of the subject, com.apple.mgmt.…), its
// expiry, and whether Apple issued it.
package pushcert

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/pomona-mdm/pomona/pki"
)

// oidUID is the userId attribute (0.9.2342.19200300.100.1.1) that carries
// the push topic.
var oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

// TopicPrefix starts every MDM push topic.
const TopicPrefix = "com.apple.mgmt."

// WarnBefore is how long before expiry Pomona starts warning.
const WarnBefore = 30 * 24 * time.Hour

// Cert is a push certificate with its key.
type Cert struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate // intermediates, if given
	Topic string
	// IssuedByApple reports whether the issuer is Apple's push CA; test and
	// simulator setups use their own CA and get a warning.
	IssuedByApple bool
}

// Topic returns the UID of the certificate's subject.
func Topic(c *x509.Certificate) (string, error) {
	for _, n := range c.Subject.Names {
		if n.Type.Equal(oidUID) {
			if s, ok := n.Value.(string); ok && s != "" {
				return s, nil
			}
		}
	}
	return "", errors.New("the certificate has no UID (topic) in its subject: it is not an APNs MDM push certificate")
}

func fromParts(cert *x509.Certificate, key crypto.Signer, chain []*x509.Certificate) (*Cert, error) {
	topic, err := Topic(cert)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(topic, TopicPrefix) {
		return nil, fmt.Errorf("the topic %q does not start with %s: this is not an MDM push certificate", topic, TopicPrefix)
	}
	if key != nil {
		if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
			return nil, errors.New("the private key does not belong to the certificate")
		}
	}
	return &Cert{Cert: cert, Key: key, Chain: chain, Topic: topic, IssuedByApple: appleIssued(cert)}, nil
}

// appleIssued recognises Apple's push certificate issuers by name.
func appleIssued(c *x509.Certificate) bool {
	o := strings.Join(c.Issuer.Organization, " ")
	cn := c.Issuer.CommonName
	return o == "Apple Inc." && (strings.HasPrefix(cn, "Apple Application Integration") || strings.Contains(cn, "Push"))
}

// ParsePEM reads a certificate (with optional intermediates) and, when
// keyPEM is not empty, its private key.
func ParsePEM(certPEM, keyPEM []byte) (*Cert, error) {
	var certs []*x509.Certificate
	rest := certPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("certificate: no PEM CERTIFICATE block")
	}
	var key crypto.Signer
	if len(keyPEM) > 0 {
		_, k, err := pki.ParsePair(append(pki.CertPEM(certs[0]), keyPEM...))
		if err != nil {
			return nil, err
		}
		key = k
	}
	return fromParts(certs[0], key, certs[1:])
}

// ParsePKCS12 reads a .p12 export (as made by Keychain Access).
func ParsePKCS12(data []byte, password string) (*Cert, error) {
	key, cert, chain, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, fmt.Errorf("PKCS #12: %w (check the password)", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("PKCS #12: unsupported private key type")
	}
	return fromParts(cert, signer, chain)
}

// Problems lists what an operator should know about c at now: expiry
// (also ahead of time) and a non-Apple issuer.
func (c *Cert) Problems(now time.Time) []string {
	var out []string
	switch left := c.Cert.NotAfter.Sub(now); {
	case left <= 0:
		out = append(out, fmt.Sprintf("the APNs push certificate expired on %s: devices can no longer be woken. Renew it (same Apple ID, same topic) at Apple's push certificates portal and import it: pomona push-cert import", c.Cert.NotAfter.Format("2006-01-02")))
	case left < WarnBefore:
		out = append(out, fmt.Sprintf("the APNs push certificate expires in %d days (%s): renew it (same Apple ID, keep the topic) and import it: pomona push-cert import", int(left.Hours()/24), c.Cert.NotAfter.Format("2006-01-02")))
	}
	if now.Before(c.Cert.NotBefore) {
		out = append(out, "the APNs push certificate is not valid yet")
	}
	if !c.IssuedByApple {
		out = append(out, "the push certificate was not issued by Apple's push CA: fine for tests and the simulator, but Apple's servers will refuse it")
	}
	return out
}

// NewCSR makes the key and certificate signing request an admin takes
// (after the MDM vendor signs it) to Apple's push certificates portal.
func NewCSR(commonName string) (csrPEM []byte, key crypto.Signer, err error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName, Organization: []string{"Pomona MDM"}},
	}, k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), k, nil
}

// NewLocal makes a push certificate that is not from Apple, for tests, the
// simulator and demo setups talking to a local APNs stand-in.
func NewLocal(topic string, issuer *pki.CA, notAfter time.Time) (*Cert, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: pki.NewSerial(),
		Subject: pkix.Name{CommonName: "APSP:" + strings.TrimPrefix(topic, TopicPrefix), Organization: []string{"Pomona local push"},
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidUID, Value: topic}}},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer.Cert, key.Public(), issuer.Key)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return fromParts(c, key, nil)
}

// ErrTopicChange: the new certificate has another topic than the current one.
var ErrTopicChange = errors.New("topic change")

// CheckReplacement says whether c may replace old (nil: none yet): it must
// be valid now, and keep the topic unless allowTopicChange (every enrolled
// device would stop answering pushes and have to re-enroll).
func CheckReplacement(old, c *Cert, allowTopicChange bool, now time.Time) error {
	if now.After(c.Cert.NotAfter) {
		return fmt.Errorf("the certificate expired on %s", c.Cert.NotAfter.Format("2006-01-02"))
	}
	if old != nil && old.Topic != c.Topic && !allowTopicChange {
		return fmt.Errorf("%w: the new certificate's topic %s differs from the current %s: enrolled devices would stop receiving pushes and must re-enroll. Renew the existing certificate with the same Apple ID instead, or allow the topic change", ErrTopicChange, c.Topic, old.Topic)
	}
	return nil
}
