package pushcert

import (
	"context"
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
}

// Load returns the stored certificate; ErrNone when none was imported.
func (s *Stored) Load(ctx context.Context) (*Cert, error) { return Load(ctx, s.Secrets, s.Sealer) }

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
