package pushcert

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/store"
)

// Secrets is the part of the store the push certificate lives in.
type Secrets interface {
	PutSecret(ctx context.Context, name string, value []byte) error
	Secret(ctx context.Context, name string) ([]byte, error)
}

// Sealer protects the private keys.
type Sealer interface {
	Seal(plaintext []byte, context string) []byte
	Open(sealed []byte, context string) ([]byte, error)
}

const (
	certSecret   = "apns/push-cert"
	csrKeySecret = "apns/csr-key"
)

// ErrNone means no push certificate has been imported yet.
var ErrNone = errors.New("no APNs push certificate yet: create a CSR with `pomona push-cert csr`, have it signed with an MDM vendor certificate, upload it at Apple's Push Certificates Portal, then `pomona push-cert import`")

// Load returns the stored push certificate.
func Load(ctx context.Context, secrets Secrets, sealer Sealer) (*Cert, error) {
	sealed, err := readSealed(ctx, secrets)
	if err != nil {
		return nil, err
	}
	return openSealed(sealed, sealer)
}

// readSealed reads the stored certificate's sealed bundle (certificate
// and key PEM); ErrNone when none was imported.
func readSealed(ctx context.Context, secrets Secrets) ([]byte, error) {
	sealed, err := secrets.Secret(ctx, certSecret)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNone
	}
	return sealed, err
}

// openSealed unseals and parses a bundle readSealed returned.
func openSealed(sealed []byte, sealer Sealer) (*Cert, error) {
	bundle, err := sealer.Open(sealed, certSecret)
	if err != nil {
		return nil, fmt.Errorf("push certificate: %w", err)
	}
	cert, key, err := pki.ParsePair(bundle)
	if err != nil {
		return nil, fmt.Errorf("push certificate: %w", err)
	}
	return fromParts(cert, key, nil)
}

// The errors of Save that the administrator's upload caused (the key is
// missing); every other error of Save is the server's (reading or writing
// its secrets, unsealing).
var (
	ErrNoCSRKey       = errors.New("the certificate comes without a private key and no CSR was made here: import the PEM key or a .p12 as well")
	ErrCSRKeyMismatch = errors.New("the certificate does not match the key of the last CSR made here: import its private key too")
)

// Save stores c, replacing the previous certificate. A certificate without
// a key uses the key kept from the last CSR. Renewing keeps devices
// working only when the topic stays the same; the caller decides whether a
// topic change is allowed. Errors: ErrNoCSRKey, ErrCSRKeyMismatch (the
// upload's fault), otherwise the store's or the sealer's.
func Save(ctx context.Context, secrets Secrets, sealer Sealer, c *Cert) error {
	if c.Key == nil {
		sealed, err := secrets.Secret(ctx, csrKeySecret)
		if errors.Is(err, store.ErrNotFound) {
			return ErrNoCSRKey
		}
		if err != nil {
			return err
		}
		kp, err := sealer.Open(sealed, csrKeySecret)
		if err != nil {
			return err
		}
		_, key, err := pki.ParsePair(append(pki.CertPEM(c.Cert), kp...))
		if err != nil {
			return ErrCSRKeyMismatch
		}
		c.Key = key
	}
	kp, err := pki.KeyPEM(c.Key)
	if err != nil {
		return err
	}
	return secrets.PutSecret(ctx, certSecret, sealer.Seal(append(pki.CertPEM(c.Cert), kp...), certSecret))
}

// SaveCSRKey keeps the key of a new CSR until its certificate is imported.
func SaveCSRKey(ctx context.Context, secrets Secrets, sealer Sealer, key crypto.Signer) error {
	kp, err := pki.KeyPEM(key)
	if err != nil {
		return err
	}
	return secrets.PutSecret(ctx, csrKeySecret, sealer.Seal(kp, csrKeySecret))
}
