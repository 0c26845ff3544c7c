// Package pki is Pomona's certificate authority: it creates the CA on
// first start and issues the development TLS certificate (and, with the
// enrollment work, the profile-signing and device identity certificates).
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// KeyType names a key algorithm and size.
type KeyType string

const (
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"
)

// KeyTypes lists the accepted key types.
var KeyTypes = []KeyType{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096}

// ParseKeyType validates a key type name.
func ParseKeyType(s string) (KeyType, error) {
	for _, k := range KeyTypes {
		if string(k) == strings.ToLower(s) {
			return k, nil
		}
	}
	names := make([]string, len(KeyTypes))
	for i, k := range KeyTypes {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown key type %q (use one of %s)", s, strings.Join(names, ", "))
}

// GenerateKey makes a new private key of type kt.
func GenerateKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("unknown key type %q", kt)
}

// CA is a certificate authority: its certificate and private key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA creates a self-signed CA valid for ten years.
func NewCA(commonName string, kt KeyType, now time.Time) (*CA, error) {
	key, err := GenerateKey(kt)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          NewSerial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Pomona MDM"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// ServerCertValidity keeps TLS certificates within Apple's limit for
// certificates from privately trusted CAs (825 days) with room to spare.
const ServerCertValidity = 397 * 24 * time.Hour

// IssueServer issues a TLS server certificate for hosts (DNS names or IP
// addresses) with a new key of type kt.
func (ca *CA) IssueServer(hosts []string, kt KeyType, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("pki: a server certificate needs at least one host name")
	}
	key, err := GenerateKey(kt)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: NewSerial(),
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"Pomona MDM"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(ServerCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		SubjectKeyId: keyID(key.Public()),
	}
	if _, ok := key.(*rsa.PrivateKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue server certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// NewSerial is a random certificate serial number: positive, at most
// 127 bits (within the 20 octets RFC 5280 §4.1.2.2 allows, with at least
// the 64 random bits the CA/Browser Forum asks for).
func NewSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

// SerialHex is how a certificate's serial is stored and logged: the
// big-endian bytes of the serial number in lower-case hex (no sign, no
// leading zero bytes), e.g. "4f1c…".
func SerialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha1.Sum(der) // RFC 5280 §4.2.1.2 method (1); not a security use
	return sum[:]
}

// CertPEM encodes a certificate as PEM.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// KeyPEM encodes a private key as PKCS #8 PEM.
func KeyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePair reads a PEM bundle holding one certificate and its private key
// (PKCS #8, PKCS #1 or SEC 1) and checks that they belong together.
func ParsePair(bundle []byte) (*x509.Certificate, crypto.Signer, error) {
	var cert *x509.Certificate
	var key crypto.Signer
	for {
		var b *pem.Block
		b, bundle = pem.Decode(bundle)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			if cert == nil {
				c, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					return nil, nil, fmt.Errorf("pki: certificate: %w", err)
				}
				cert = c
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			k, err := parseKey(b)
			if err != nil {
				return nil, nil, err
			}
			key = k
		}
	}
	if cert == nil || key == nil {
		return nil, nil, errors.New("pki: bundle needs a CERTIFICATE and a PRIVATE KEY block")
	}
	if !publicEqual(cert.PublicKey, key.Public()) {
		return nil, nil, errors.New("pki: the private key does not match the certificate")
	}
	return cert, key, nil
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("pki: unsupported private key type")
	}
	return s, nil
}

func publicEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}
