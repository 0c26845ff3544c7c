package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Secrets is the part of the store the CA is kept in.
type Secrets interface {
	CreateSecret(ctx context.Context, name string, value []byte) error
	PutSecret(ctx context.Context, name string, value []byte) error
	Secret(ctx context.Context, name string) ([]byte, error)
}

// Sealer encrypts private keys before they reach the store.
type Sealer interface {
	Seal(plaintext []byte, context string) []byte
	Open(sealed []byte, context string) ([]byte, error)
}

const caSecret = "pki/ca"

// LoadOrCreateCA returns the CA kept in the store, creating it on first
// start. Two instances starting at once agree on one CA: the loser of the
// create race reads the winner's. created reports a new CA.
func LoadOrCreateCA(ctx context.Context, secrets Secrets, sealer Sealer, kt KeyType, now time.Time) (ca *CA, created bool, err error) {
	if ca, err := loadPair(ctx, secrets, sealer, caSecret); err == nil {
		return &CA{Cert: ca.cert, Key: ca.key}, false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, false, err
	}
	ca, err = NewCA("Pomona CA", kt, now)
	if err != nil {
		return nil, false, err
	}
	sealed, err := sealPair(sealer, caSecret, ca.Cert, ca.Key)
	if err != nil {
		return nil, false, err
	}
	if err := secrets.CreateSecret(ctx, caSecret, sealed); errors.Is(err, store.ErrConflict) {
		p, err := loadPair(ctx, secrets, sealer, caSecret)
		if err != nil {
			return nil, false, err
		}
		return &CA{Cert: p.cert, Key: p.key}, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("pki: store CA: %w", err)
	}
	return ca, true, nil
}

// ServerCert returns the development TLS certificate for host, issuing
// (and storing) a new one when none exists, it names another host, it was
// issued by another CA, or it expires within 30 days.
func ServerCert(ctx context.Context, secrets Secrets, sealer Sealer, ca *CA, host string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	name := "pki/tls/" + host
	p, err := loadPair(ctx, secrets, sealer, name)
	if err == nil && p.cert.VerifyHostname(host) == nil && now.Add(30*24*time.Hour).Before(p.cert.NotAfter) &&
		p.cert.CheckSignatureFrom(ca.Cert) == nil {
		return p.cert, p.key, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	cert, key, err := ca.IssueServer([]string{host}, ECDSAP256, now)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := sealPair(sealer, name, cert, key)
	if err != nil {
		return nil, nil, err
	}
	if err := secrets.PutSecret(ctx, name, sealed); err != nil {
		return nil, nil, fmt.Errorf("pki: store TLS certificate: %w", err)
	}
	return cert, key, nil
}

type pair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func sealPair(sealer Sealer, name string, cert *x509.Certificate, key crypto.Signer) ([]byte, error) {
	kp, err := KeyPEM(key)
	if err != nil {
		return nil, err
	}
	return sealer.Seal(append(CertPEM(cert), kp...), name), nil
}

func loadPair(ctx context.Context, secrets Secrets, sealer Sealer, name string) (*pair, error) {
	sealed, err := secrets.Secret(ctx, name)
	if err != nil {
		return nil, err
	}
	bundle, err := sealer.Open(sealed, name)
	if err != nil {
		return nil, fmt.Errorf("pki: open %s: %w", name, err)
	}
	cert, key, err := ParsePair(bundle)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", name, err)
	}
	return &pair{cert, key}, nil
}
