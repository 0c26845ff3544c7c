package abm

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/textproto"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/untrusted"
)

// KeyPair is the key of one ABM MDM server and the self-signed public-key
// certificate the admin uploads to ABM (ABM encrypts the server token to
// it; GetToken's JWTs are signed with the key).
type KeyPair struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

// KeyValidity is how long a new public-key certificate is valid. ABM uses
// it to encrypt each downloaded server token (renewed yearly by a new
// download for the same key), so it outlives many tokens.
const KeyValidity = 5 * 365 * 24 * time.Hour

// NewKeyPair makes an RSA-2048 key (the JWT is RS256) and its self-signed
// certificate named commonName, valid from now for KeyValidity.
func NewKeyPair(commonName string, now time.Time) (*KeyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"Pomona MDM"}},
		NotBefore:    now.Add(-10 * time.Minute),
		NotAfter:     now.Add(KeyValidity),
		KeyUsage:     x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// CertPEM is the certificate to upload to ABM.
func (k *KeyPair) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Cert.Raw})
}

// MaxServerToken bounds an uploaded server token file (Apple's are about
// 5 KB).
const MaxServerToken = 64 << 10

// Refusals of an uploaded server token; each error's text says what to do.
var (
	// ErrForeignToken: the token is encrypted to another key (made for
	// another MDM server, or for a key pair made elsewhere).
	ErrForeignToken = errors.New("server token not for this key")
	// ErrExpiredToken: its access token's expiry has passed.
	ErrExpiredToken = errors.New("server token expired")
	// ErrBadToken: not a server token at all (format, size, content).
	ErrBadToken = errors.New("not a server token")
)

// DecryptServerToken reads the .p7m file ABM offers for download (an
// S/MIME message, application/pkcs7-mime enveloped-data, base64; a bare
// DER or PEM PKCS #7 is accepted too), decrypts it with k through the
// untrusted layer's bounded CMS parsing, and returns the OAuth
// credentials of its "-----BEGIN MESSAGE-----" JSON. It refuses a token
// encrypted to another key (ErrForeignToken), one whose access token
// expired at now (ErrExpiredToken, the tokens are returned too) and
// anything else malformed (ErrBadToken).
func DecryptServerToken(file []byte, k *KeyPair, now time.Time) (*OAuthTokens, error) {
	if len(file) > MaxServerToken {
		return nil, fmt.Errorf("%w: the file is larger than %d KiB (ABM's server tokens are a few KB: upload the .p7m file ABM downloaded)", ErrBadToken, MaxServerToken>>10)
	}
	der, err := unwrapSMIME(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (upload the .p7m file ABM downloaded, unchanged)", ErrBadToken, err)
	}
	plain, err := untrusted.DecryptEnveloped(der, untrusted.DefaultASN1, k.Cert, k.Key)
	if errors.Is(err, untrusted.ErrNotForKey) {
		return nil, fmt.Errorf("%w: this server token is encrypted to another public key. In ABM, edit the MDM server, upload this token's public-key certificate (%s), then download the token again", ErrForeignToken, k.Cert.Subject.CommonName)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	js, err := messageJSON(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: the decrypted token: %v", ErrBadToken, err)
	}
	var t OAuthTokens
	dec := json.NewDecoder(bytes.NewReader(js))
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: the decrypted token is not the expected JSON: %v", ErrBadToken, err)
	}
	if err := t.complete(); err != nil {
		return nil, fmt.Errorf("%w: the decrypted token: %v", ErrBadToken, err)
	}
	if t.AccessTokenExpiry.IsZero() {
		return nil, fmt.Errorf("%w: the decrypted token has no access_token_expiry", ErrBadToken)
	}
	if !now.Before(t.AccessTokenExpiry) {
		return &t, fmt.Errorf("%w: it expired on %s. In ABM, open the MDM server and download a new token, then import that one", ErrExpiredToken, t.AccessTokenExpiry.UTC().Format("2006-01-02"))
	}
	return &t, nil
}

// unwrapSMIME returns the DER of an S/MIME .p7m (MIME headers, a blank
// line, base64), a PEM "PKCS7" block, or DER as it is.
func unwrapSMIME(b []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return nil, errors.New("the file is empty")
	}
	if trimmed[0] == 0x30 {
		return trimmed, nil
	}
	if blk, _ := pem.Decode(trimmed); blk != nil {
		return blk.Bytes, nil
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(trimmed)))
	hdr, err := r.ReadMIMEHeader()
	if err != nil && len(hdr) == 0 {
		return nil, errors.New("neither an S/MIME message nor PKCS #7")
	}
	ct := strings.ToLower(hdr.Get("Content-Type"))
	if !strings.Contains(ct, "pkcs7-mime") {
		return nil, fmt.Errorf("the S/MIME Content-Type is %q, not application/pkcs7-mime", hdr.Get("Content-Type"))
	}
	if enc := strings.ToLower(hdr.Get("Content-Transfer-Encoding")); enc != "" && enc != "base64" {
		return nil, fmt.Errorf("the S/MIME transfer encoding is %q, not base64", enc)
	}
	body, err := io.ReadAll(io.LimitReader(r.R, MaxServerToken))
	if err != nil {
		return nil, err
	}
	clean := strings.Map(func(c rune) rune {
		if c == '\r' || c == '\n' || c == ' ' || c == '\t' {
			return -1
		}
		return c
	}, string(body))
	der, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("the S/MIME body is not base64: %v", err)
	}
	return der, nil
}

// messageJSON takes the JSON out of the decrypted content: MIME headers,
// then "-----BEGIN MESSAGE-----", the JSON, "-----END MESSAGE-----".
func messageJSON(b []byte) ([]byte, error) {
	const begin, end = "-----BEGIN MESSAGE-----", "-----END MESSAGE-----"
	i := bytes.Index(b, []byte(begin))
	if i < 0 {
		return nil, errors.New("no -----BEGIN MESSAGE----- block")
	}
	rest := b[i+len(begin):]
	j := bytes.Index(rest, []byte(end))
	if j < 0 {
		return nil, errors.New("no -----END MESSAGE----- line")
	}
	return bytes.TrimSpace(rest[:j]), nil
}

// marshalTokens is the JSON Service seals and keeps.
func marshalTokens(t *OAuthTokens) []byte {
	b, _ := json.Marshal(t)
	return b
}
