package pushcert

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// Stored is the server's one push certificate kept sealed in the store:
// what the API and console import, the pusher pushes with and the MDM
// channel takes the Topic from. OnExpiry (optional) is told the NotAfter of
// every new certificate (the zero time: none usable), e.g. for the expiry
// metric.
type Stored struct {
	Secrets  Secrets
	Sealer   Sealer
	OnExpiry func(notAfter time.Time)

	// The sealed bundle Load last opened and what it held: one entry.
	mu     sync.Mutex
	sealed []byte
	last   *Cert
}

// Load returns the stored certificate; ErrNone when none was imported.
// Callers share the returned Cert and must not change it.
//
// It reads the sealed bundle from the store every time, so a certificate
// another instance imported is seen at once, but unseals and parses it
// only when those bytes differ from the ones it last parsed: every push
// loads the certificate, and parsing its RSA key (PEM, PKCS #1/#8, the
// key's checks) cost ~0.4 ms of server CPU per push in the profile wave
// (docs/benchmarks.md, session 8). Equal sealed bytes hold the same
// certificate, so no stale one is returned; memory is one certificate.
func (s *Stored) Load(ctx context.Context) (*Cert, error) {
	sealed, err := readSealed(ctx, s.Secrets)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.last != nil && bytes.Equal(sealed, s.sealed) {
		c := s.last
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	c, err := openSealed(sealed, s.Sealer)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.sealed, s.last = sealed, c
	s.mu.Unlock()
	return c, nil
}

// Save replaces the stored certificate with c (its key included).
func (s *Stored) Save(ctx context.Context, c *Cert) error { return Save(ctx, s.Secrets, s.Sealer, c) }

// SaveCSRKey keeps the private key of a CSR until its certificate comes
// back from Apple's portal.
func (s *Stored) SaveCSRKey(ctx context.Context, c *Cert) error {
	return SaveCSRKey(ctx, s.Secrets, s.Sealer, c.Key)
}

// Topic is the APNs topic (the certificate's UID,
// com.apple.mgmt.External.<uuid>) of the stored certificate.
func (s *Stored) Topic(ctx context.Context) (string, error) {
	c, err := s.Load(ctx)
	if err != nil {
		return "", err
	}
	return c.Topic, nil
}

// Changed tells OnExpiry of c (nil: none usable): after an import, and
// when the periodic check (push.CertWatch) reloaded it.
func (s *Stored) Changed(c *Cert) {
	if s.OnExpiry == nil {
		return
	}
	if c == nil {
		s.OnExpiry(time.Time{})
		return
	}
	s.OnExpiry(c.Cert.NotAfter)
}
