package mdm

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/pomona-mdm/pomona/untrusted"
)

// ErrSignature wraps every device-authentication failure.
var ErrSignature = errors.New("device authentication failed")

// ErrSigningTime: the signature verifies except that its CMS signing time
// lies outside the signer certificate's validity (wrapped with
// ErrSignature). VerifyDetachedAnyTime is then worth trying.
var ErrSigningTime = errors.New("the signing time is outside the certificate's validity")

// MaxSignature bounds the Mdm-Signature header (base64 characters). A
// device's signature (one certificate, one SignerInfo) is about 2 KiB.
const MaxSignature = 16 << 10

// SignatureDigests are the digest algorithms accepted in the one
// SignerInfo of an Mdm-Signature: Apple devices sign with SHA-1 or
// SHA-256 (RFC 5754 §2).
var SignatureDigests = []asn1.ObjectIdentifier{untrusted.SHA1, untrusted.SHA256}

// signatureASN1 bounds the decoded Mdm-Signature before any parsing.
var signatureASN1 = untrusted.ASN1Limits{MaxSize: MaxSignature, MaxDepth: 32, MaxElements: 2048}

// VerifySignature checks an Mdm-Signature header (sent when the MDM
// payload's SignMessage is true, https://developer.apple.com/documentation/devicemanagement/mdm): base64 of a DER CMS
// detached signature over exactly body, carrying the signer certificate,
// which must be issued by ca and valid at now. It returns the signer.
func VerifySignature(header string, body []byte, ca *x509.Certificate, now time.Time) (*x509.Certificate, error) {
	signer, err := VerifyDetached(header, body)
	if err != nil {
		return nil, err
	}
	return signer, CheckIdentity(signer, ca, now)
}

// VerifyDetached checks the CMS signature of an Mdm-Signature header over
// body and returns the signer certificate, without judging who issued it.
// The cost is bounded before anything is hashed: the header is at most
// MaxSignature characters and parsed by package untrusted (linear BER/DER
// walk within signatureASN1), the body at most MaxResult bytes, and the
// CMS must carry exactly one SignerInfo (RFC 5652 §5.3) with a digest in
// SignatureDigests, so the body is hashed once. Errors wrap ErrSignature.
// Apple: the Mdm-Signature header a device sends when its MDM payload
// sets SignMessage (https://developer.apple.com/documentation/devicemanagement/mdm).
func VerifyDetached(header string, body []byte) (*x509.Certificate, error) {
	return verifyDetached(header, body, false, nil)
}

// VerifyDetachedWith is VerifyDetached with the certificates the CMS
// carries parsed through certs (nil: parsed every time): the same checks,
// the same errors.
func VerifyDetachedWith(header string, body []byte, certs *CertCache) (*x509.Certificate, error) {
	return verifyDetached(header, body, false, certs)
}

// VerifyDetachedAnyTime is VerifyDetached without comparing the CMS
// signing time with the signer certificate's validity, under the same
// bounds (it is reached by the same unauthenticated bytes). A device whose
// identity expired signs with a time after its NotAfter, which
// VerifyDetached refuses before anyone can say why; the caller must check
// the returned certificate's validity with its own clock.
func VerifyDetachedAnyTime(header string, body []byte) (*x509.Certificate, error) {
	return verifyDetached(header, body, true, nil)
}

// DetachedSigner parses an Mdm-Signature header as VerifyDetached does
// (the same bounds, detached, one SignerInfo, an accepted digest) and
// returns the certificate its SignerInfo names. The signature is NOT
// checked (there is no body yet): the answer only says whether a request
// claims an identity worth reading a large body for. Errors wrap
// ErrSignature.
func DetachedSigner(header string, certs *CertCache) (*x509.Certificate, error) {
	sd, err := parseDetached(header, certs)
	if err != nil {
		return nil, err
	}
	c, err := sd.Signer()
	if err != nil {
		return nil, fmt.Errorf("%w: Mdm-Signature: %v", ErrSignature, err)
	}
	return c, nil
}

func verifyDetached(header string, body []byte, anyTime bool, certs *CertCache) (*x509.Certificate, error) {
	if len(body) > MaxResult {
		return nil, fmt.Errorf("%w: the signed body is larger than %d bytes", ErrSignature, MaxResult)
	}
	sd, err := parseDetached(header, certs)
	if err != nil {
		return nil, err
	}
	signer, err := sd.Verify(body, anyTime)
	if err != nil {
		if errors.Is(err, untrusted.ErrSigningTime) {
			return nil, fmt.Errorf("%w: %w: %v", ErrSignature, ErrSigningTime, err)
		}
		return nil, fmt.Errorf("%w: the signature does not match the body: %v", ErrSignature, err)
	}
	return signer, nil
}

// parseDetached is the header half of verifyDetached: bounded parse of a
// detached CMS SignedData.
func parseDetached(header string, certs *CertCache) (*untrusted.SignedData, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return nil, fmt.Errorf("%w: no Mdm-Signature header and no client certificate", ErrSignature)
	}
	if len(header) > MaxSignature {
		return nil, fmt.Errorf("%w: Mdm-Signature too large", ErrSignature)
	}
	der, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		return nil, fmt.Errorf("%w: Mdm-Signature is not base64", ErrSignature)
	}
	var parse untrusted.CertParser
	if certs != nil {
		parse = certs.Parse
	}
	sd, err := untrusted.ParseSignedDataWith(der, signatureASN1, parse, SignatureDigests...)
	if err != nil {
		return nil, fmt.Errorf("%w: Mdm-Signature is not an acceptable CMS signature: %v", ErrSignature, err)
	}
	if len(sd.Content) != 0 {
		return nil, fmt.Errorf("%w: Mdm-Signature must be detached", ErrSignature)
	}
	return sd, nil
}

// CheckIdentity checks that an identity certificate (from Mdm-Signature or
// TLS) was issued by ca and is valid at now.
func CheckIdentity(c *x509.Certificate, ca *x509.Certificate, now time.Time) error {
	if err := c.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("%w: the identity certificate is not from Pomona's CA", ErrSignature)
	}
	if now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return fmt.Errorf("%w: the identity certificate is not valid now (valid %s to %s)", ErrSignature,
			c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// IdentityChecker is CheckIdentity with a memory of certificates already
// found to be issued by the CA: that depends only on the certificate's
// bytes, so the CA signature is checked once per certificate. The validity
// window is checked every time.
//
// The memory is of the certificates' SHA-256 and, in front of it, of the
// very *x509.Certificate values found good (weak pointers: remembering one
// keeps nothing alive, and a value that was collected never matches
// another). A device's certificate comes from CertCache, one value per
// DER, so its requests skip hashing its ~1 KB of DER again (SHA-256 was
// ~2 % of an idle poll's handler, docs/benchmarks.md, Session 11 —
// idle3). A *x509.Certificate must therefore not be modified once checked
// (nothing in Pomona modifies a parsed certificate; CertCache's are
// shared already).
type IdentityChecker struct {
	CA *x509.Certificate
	// Max bounds the memory (entries of each kind); when full it starts
	// afresh.
	Max int

	mu     sync.Mutex
	seen   map[[32]byte]struct{}
	values map[weak.Pointer[x509.Certificate]]struct{}
}

// sumCert is the fingerprint the checker remembers (a variable for the
// test that counts its calls).
var sumCert = func(c *x509.Certificate) [32]byte { return sha256.Sum256(c.Raw) }

// Check is CheckIdentity for c.
func (k *IdentityChecker) Check(c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return CheckIdentity(c, k.CA, now) // the same error text
	}
	wp := weak.Make(c)
	k.mu.Lock()
	_, ok := k.values[wp]
	k.mu.Unlock()
	if ok {
		return nil
	}
	sum := sumCert(c)
	k.mu.Lock()
	_, ok = k.seen[sum]
	k.mu.Unlock()
	if !ok {
		if err := CheckIdentity(c, k.CA, now); err != nil {
			return err
		}
	}
	k.mu.Lock()
	if !ok {
		if k.seen == nil || (k.Max > 0 && len(k.seen) >= k.Max) {
			k.seen = map[[32]byte]struct{}{}
		}
		k.seen[sum] = struct{}{}
	}
	if k.values == nil || (k.Max > 0 && len(k.values) >= k.Max) {
		k.values = map[weak.Pointer[x509.Certificate]]struct{}{}
	}
	k.values[wp] = struct{}{}
	k.mu.Unlock()
	return nil
}

// CertCache remembers certificates parsed from DER by their exact bytes,
// so that a device's identity certificate, which rides in every
// Mdm-Signature, is parsed once and not on every request (x509 parsing
// cost ~40 allocations and ~40,000 instructions per poll,
// docs/benchmarks.md, session 5; looking the bytes up in a map costs far
// less than even hashing them with SHA-256). Parsing depends only on the
// bytes, so a remembered certificate is exactly what x509.ParseCertificate
// would return; failures are not remembered. Nothing is trusted because it
// is remembered: every signature is verified, every identity checked.
//
// Memory is bounded: two generations of at most Max entries each (a full
// current generation becomes the previous one, the older one is dropped;
// a hit in the previous generation moves the entry forward), so at most
// 2×Max certificates are kept (a device identity: ~3.7 KB parsed plus its
// DER as the key, ~4.6 KB), and a device that polls again within a
// generation is a hit.
//
// Certificates larger than MaxCachedCert are parsed every time, never
// remembered: the cache is filled before any signature is verified, by
// whatever certificates an unauthenticated request carries, and
// Mdm-Signature may hold ~12 KB of them. Each entry costs about twice its
// DER plus ~3 KB, so without the cap 2×Max attacker certificates of 11 KB
// held ~100 MB; with it, at most ~7 KB an entry (~28 MB at Max 2048).
type CertCache struct {
	// Max bounds each generation (entries); at least 1.
	Max int

	mu        sync.Mutex
	cur, prev map[string]*x509.Certificate
}

// MaxCachedCert bounds the DER of a certificate CertCache remembers. An
// identity Pomona issues is ~1.4 KB at most (RSA-4096 CA and device key).
const MaxCachedCert = 2048

// Parse is x509.ParseCertificate(der) through the cache. der is not kept:
// a certificate parsed here is parsed from a copy.
func (k *CertCache) Parse(der []byte) (*x509.Certificate, error) {
	k.mu.Lock()
	c, ok := k.cur[string(der)] // no conversion: the compiler looks the bytes up in place
	if !ok {
		if c, ok = k.prev[string(der)]; ok {
			k.putLocked(string(c.Raw), c)
		}
	}
	k.mu.Unlock()
	if ok {
		return c, nil
	}
	if len(der) > MaxCachedCert {
		// Not an identity Pomona issued: parsed, never remembered (see
		// MaxCachedCert).
		return x509.ParseCertificate(bytes.Clone(der))
	}
	c, err := x509.ParseCertificate(bytes.Clone(der))
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.putLocked(string(der), c)
	k.mu.Unlock()
	return c, nil
}

func (k *CertCache) putLocked(key string, c *x509.Certificate) {
	if k.cur == nil || len(k.cur) >= max(k.Max, 1) {
		k.prev, k.cur = k.cur, make(map[string]*x509.Certificate, max(k.Max, 1))
	}
	k.cur[key] = c
}

// Len is the number of certificates remembered (both generations; an
// entry moved forward may be counted twice).
func (k *CertCache) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.cur) + len(k.prev)
}
