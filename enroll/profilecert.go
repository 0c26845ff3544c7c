package enroll

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"time"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/store"
)

// issueProfileCert issues the user certificate a configuration profile's
// SCEP payload asks for with its one-time challenge (filled in by the
// profile reconciler, bound to one enrollment and one profile): subject
// and SAN are the enrollment's user's email (pki.IssueUser). It is
// recorded as a ProfileCert — never an identity certificate, so it cannot
// authenticate on the MDM channel.
func (s *Service) issueProfileCert(ctx context.Context, csr *x509.CertificateRequest, h []byte, ch *store.SCEPChallenge, now time.Time) (*x509.Certificate, *store.Enrollment, error) {
	if s.ProfileCerts == nil {
		return nil, nil, ErrBadSCEPChallenge
	}
	_, profileID, err := s.ProfileCerts.ProfileChallenge(ctx, h)
	if err != nil {
		return nil, nil, ErrBadSCEPChallenge
	}
	e, err := s.Store.Enrollment(ctx, ch.DeviceID)
	if err != nil {
		return nil, nil, err
	}
	if e.Status != store.EnrollmentEnrolled {
		return nil, nil, ErrBadSCEPChallenge // ended enrollments lose their challenges
	}
	u, err := s.Store.User(ctx, e.UserID)
	if err != nil {
		return nil, nil, err
	}
	org := ""
	if t, err := s.Store.Tenant(ctx, e.TenantID); err == nil {
		org = t.Name
	}
	cert, err := s.Issuer.CA.IssueUser(csr, u.Email, org, s.Issuer.Revocation, now)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(cert.Raw)
	pc := &store.ProfileCert{Serial: pki.SerialHex(cert), DeviceID: e.ID, ProfileID: profileID, Subject: cert.Subject.String(), Email: u.Email,
		SHA256: sum[:], NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, IssuedAt: now}
	err = s.ProfileCerts.ConsumeProfileChallenge(ctx, h, now, pc)
	switch {
	case errors.Is(err, store.ErrSCEPChallengeUsed):
		return nil, nil, ErrSCEPChallengeUsed
	case errors.Is(err, store.ErrExpired):
		return nil, nil, ErrSCEPChallengeExpired
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict):
		return nil, nil, ErrBadSCEPChallenge
	case err != nil:
		return nil, nil, err
	}
	return cert, e, nil
}
