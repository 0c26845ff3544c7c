package enroll

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/profile"
	"github.com/pomona-mdm/pomona/store"
)

// Store is what enrollment needs from storage.
type Store interface {
	store.EnrollmentStore
	store.TenantStore
	store.UserStore
	store.RenewalStore
}

// URLs are where the profile sends the device.
type URLs struct {
	ServerURL  string
	CheckInURL string
	SCEPURL    string
}

// Service hands out enrollment profiles and issues identity certificates.
type Service struct {
	Store  Store
	Issuer *pki.Issuer
	URLs   URLs
	// TrustCA installs Pomona's CA as a trusted root in the profile (when
	// the server's TLS certificate comes from it).
	TrustCA bool
	// ProfilePrefix starts every PayloadIdentifier (reverse DNS of the
	// public host).
	ProfilePrefix    string
	SCEPChallengeTTL time.Duration
	Now              func() time.Time
	// GetToken, when set, says whether a tenant's profiles advertise
	// com.apple.mdm.token (it has an Apple Business Manager server token
	// to answer GetToken with); unset: never.
	GetToken func(ctx context.Context, tenantID string) (bool, error)
	// Renewed, when set, hears of every identity issued with a renewal
	// challenge (cert renews the certificate with serial renews).
	Renewed func(ctx context.Context, e *store.Enrollment, cert *x509.Certificate, renews string)
	// ProfileCerts, when set, lets the challenges of configuration
	// profiles' SCEP payloads issue user certificates (profilecert.go).
	ProfileCerts store.ProfileCertStore
}

// DefaultSCEPChallengeTTL bounds the time between the profile fetch and SCEP.
const DefaultSCEPChallengeTTL = time.Hour

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

// ProfilePrefix turns a host name into a reverse-DNS identifier prefix.
func ProfilePrefix(host string) string {
	parts := strings.Split(strings.ToLower(host), ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".") + ".pomona"
}

// Request is an authorized profile request.
type Request struct {
	Tenant    *store.Tenant
	User      *store.User
	TokenHash []byte
	Body      *Parsed
	Topic     string
}

// ErrSignInUsed: the access token already enrolled a device (or its
// enrollment ended); enrolling again takes a new sign-in.
var ErrSignInUsed = errors.New("this sign-in was already used to enroll a device: start the enrollment again in Settings")

// Profile creates the pending enrollment of the sign-in (r.TokenHash) with
// a one-time SCEP challenge and returns the signed profile. One sign-in,
// one enrollment: a retried fetch with the same token gets a new profile
// for the same pending enrollment, and the challenge of the earlier
// profile stops working (certificates already issued for it are revoked).
// Once the enrollment is past pending, the token gives ErrSignInUsed.
func (s *Service) Profile(ctx context.Context, r Request) ([]byte, *store.Enrollment, error) {
	platform := Platform(r.Body.Info.Product)
	if platform == "" {
		return nil, nil, fmt.Errorf("device %q is not enrolled by Pomona", r.Body.Info.Product)
	}
	now := s.now()
	challenge, chHash := opaquetoken.New()
	e := &store.Enrollment{
		ID: NewEnrollmentID(), TenantID: r.Tenant.ID, UserID: r.User.ID, TokenHash: r.TokenHash,
		Platform: platform, Product: r.Body.Info.Product, OSVersion: r.Body.Info.OSVersion, BuildVersion: r.Body.Info.Version,
		Language: r.Body.Info.Language, MachineInfo: r.Body.Info.Sanitized(), DeviceSignature: r.Body.Signature,
		ProfileID: s.ProfilePrefix + "." + r.Tenant.ID + ".enrollment",
		Status:    store.EnrollmentPending, CreatedAt: now, UpdatedAt: now,
	}
	keys := store.ProfileKeys{ManagedAppleID: r.User.ManagedAppleID, Topic: r.Topic, ServerURL: s.URLs.ServerURL, CheckInURL: s.URLs.CheckInURL}
	var err error
	if keys.GetToken, err = s.advertiseToken(ctx, r.Tenant.ID); err != nil {
		return nil, nil, err
	}
	signed, err := s.signedProfile(e, r.Tenant, keys, challenge)
	if err != nil {
		return nil, nil, err
	}
	ttl := s.SCEPChallengeTTL
	if ttl == 0 {
		ttl = DefaultSCEPChallengeTTL
	}
	_, err = s.Store.CreatePendingEnrollment(ctx, e, &store.SCEPChallenge{Hash: chHash, ExpiresAt: now.Add(ttl)}, now)
	if errors.Is(err, store.ErrConflict) {
		return nil, nil, fmt.Errorf("%w (%v)", ErrSignInUsed, err)
	}
	if err != nil {
		return nil, nil, err
	}
	// What a renewal must repeat (RenewalProfile).
	if err := s.Store.PutProfileKeys(ctx, e.ID, keys, now); err != nil {
		return nil, nil, err
	}
	return signed, e, nil
}

// signedProfile builds and signs the enrollment profile of e with the
// immutable keys k. Profile and RenewalProfile both use it, and a renewal
// passes the keys recorded when the profile was first handed out, so a
// re-sent profile carries the same immutable MDM-payload keys as the
// original (PayloadIdentifier, Topic, ServerURL, CheckInURL,
// AssignedManagedAppleID, EnrollmentMode, the per-user-connections
// capability; only com.apple.mdm.token may change): a device rejects
// a change with MCMDMErrorDomain 12012.
func (s *Service) signedProfile(e *store.Enrollment, t *store.Tenant, k store.ProfileKeys, challenge string) ([]byte, error) {
	params := profile.Params{
		Identifier: e.ProfileID, Organization: t.Name, Topic: k.Topic,
		ServerURL: k.ServerURL, CheckInURL: k.CheckInURL, SCEPURL: s.URLs.SCEPURL,
		SCEPChallenge: challenge, ManagedAppleID: k.ManagedAppleID, Platform: e.Platform, GetToken: k.GetToken,
	}
	if s.TrustCA {
		params.TrustedCA = s.Issuer.CA.Cert
	}
	raw, err := profile.Build(params)
	if err != nil {
		return nil, err
	}
	return profile.Sign(raw, s.Issuer.ProfileSigner, s.Issuer.ProfileSignerKey, []*x509.Certificate{s.Issuer.CA.Cert})
}

// advertiseToken reports whether tenantID's profiles advertise
// com.apple.mdm.token now.
func (s *Service) advertiseToken(ctx context.Context, tenantID string) (bool, error) {
	if s.GetToken == nil {
		return false, nil
	}
	ok, err := s.GetToken(ctx, tenantID)
	if err != nil {
		return false, fmt.Errorf("enrollment profile: does the tenant answer GetToken: %w", err)
	}
	return ok, nil
}

// NewEnrollmentID names a new enrollment: "en_" and 20 random characters of
// [a-z0-9]. Its channels' ids begin with it (mdmservice.NewChannelID).
func NewEnrollmentID() string {
	t, _ := opaquetoken.New()
	return "en_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(t))[:20]
}

// SCEP issuance failures a client is told about (as SCEP failInfo
// badRequest) and the log explains.
var (
	// ErrNoSCEPChallenge also answers a RenewalReq signed by the current
	// identity: Apple devices never renew an MDM identity that way (the
	// server re-sends the enrollment profile, see RenewalProfile).
	ErrNoSCEPChallenge      = errors.New("the SCEP request has no challenge (identities are renewed with a re-sent enrollment profile)")
	ErrBadSCEPChallenge     = errors.New("unknown SCEP challenge")
	ErrSCEPChallengeUsed    = errors.New("the SCEP challenge was already used")
	ErrSCEPChallengeExpired = errors.New("the SCEP challenge expired; fetch the profile again")
	ErrEnded                = errors.New("the renewal challenge's enrollment has ended")
)

// IssueForSCEPChallenge issues an identity certificate for csr if challenge is
// a valid, unexpired, unused one-time challenge; issuing consumes it, and
// the certificate is tied to the challenge's enrollment. A renewal
// challenge (RenewalProfile) issues the successor of the certificate it
// renews (RenewedFrom), for the same enrollment, while that enrollment is
// enrolled (ErrEnded otherwise). challenge is the challengePassword
// attribute of the PKCSReq's CSR (RFC 2985 §5.4.1, RFC 8894 §2.4), which
// the device copies from the SCEP payload's Challenge
// (https://developer.apple.com/documentation/devicemanagement/scep).
func (s *Service) IssueForSCEPChallenge(ctx context.Context, csr *x509.CertificateRequest, challenge string) (*x509.Certificate, *store.Enrollment, error) {
	if challenge == "" {
		return nil, nil, ErrNoSCEPChallenge
	}
	h := opaquetoken.Hash(challenge)
	ch, err := s.Store.SCEPChallenge(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrBadSCEPChallenge
	}
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	switch {
	case !ch.UsedAt.IsZero():
		return nil, nil, ErrSCEPChallengeUsed
	case !now.Before(ch.ExpiresAt):
		return nil, nil, ErrSCEPChallengeExpired
	}
	if ch.Kind == store.ChallengeProfile {
		return s.issueProfileCert(ctx, csr, h, ch, now)
	}
	e, err := s.Store.Enrollment(ctx, ch.DeviceID)
	if err != nil {
		return nil, nil, err
	}
	if e.Status == store.EnrollmentUnenrolled {
		return nil, nil, ErrBadSCEPChallenge // ended enrollments lose their challenges
	}
	if ch.Kind == store.ChallengeRenewal && e.Status != store.EnrollmentEnrolled {
		return nil, nil, ErrEnded
	}
	cert, err := s.issue(ctx, csr, e, now)
	if err != nil {
		return nil, nil, err
	}
	err = s.Store.ConsumeSCEPChallenge(ctx, h, now, record(cert, e.ID, now, ""))
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Deleted meanwhile: a newer profile of the same sign-in replaced it,
		// or the enrollment ended.
		return nil, nil, ErrBadSCEPChallenge
	case errors.Is(err, store.ErrSCEPChallengeUsed):
		return nil, nil, ErrSCEPChallengeUsed
	case errors.Is(err, store.ErrExpired):
		return nil, nil, ErrSCEPChallengeExpired
	case err != nil:
		return nil, nil, err
	}
	if ch.Kind == store.ChallengeRenewal && s.Renewed != nil {
		s.Renewed(ctx, e, cert, ch.Renews)
	}
	return cert, e, nil
}

func (s *Service) issue(ctx context.Context, csr *x509.CertificateRequest, e *store.Enrollment, now time.Time) (*x509.Certificate, error) {
	org := ""
	if t, err := s.Store.Tenant(ctx, e.TenantID); err == nil {
		org = t.Name
	}
	return s.Issuer.CA.IssueIdentity(csr, e.ID, org, now)
}

func record(c *x509.Certificate, enrollmentID string, now time.Time, renewedFrom string) *store.IdentityCert {
	sum := sha256.Sum256(c.Raw)
	return &store.IdentityCert{Serial: pki.SerialHex(c), DeviceID: enrollmentID, SHA256: sum[:],
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, IssuedAt: now, RenewedFrom: renewedFrom}
}
