package enroll

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/store"
)

// DefaultRenewalSCEPChallengeTTL bounds how long a re-sent profile's SCEP
// challenge stays usable: the device may be offline for days before it
// polls for the InstallProfile that carries it.
const DefaultRenewalSCEPChallengeTTL = 7 * 24 * time.Hour

// ErrNotRenewable: the enrollment cannot be renewed (never authenticated,
// or ended).
var ErrNotRenewable = errors.New("only an enrolled device's identity can be renewed")

// RenewalProfile starts the renewal of identity certificate serial of
// enrollment e, the way Apple devices renew an MDM identity: they never
// do it by themselves, the server re-sends the enrollment profile with
// InstallProfile (profile installation replaces the installed profile
// with the same PayloadIdentifier;
// https://developer.apple.com/documentation/devicemanagement/installprofilecommand).
// The profile is built by the code that built
// the original, with the immutable MDM-payload keys recorded then
// (store.ProfileKeys; topic is only the fallback for enrollments from
// before they were recorded), so they are identical, and its SCEP
// payload carries a fresh one-time challenge of kind renewal bound to e,
// valid for ttl (0: DefaultRenewalSCEPChallengeTTL). SCEP with it issues the
// successor certificate for the same enrollment (IssueForSCEPChallenge).
//
// It returns the signed profile (the InstallProfile's Payload) and the
// renewal as stored (status queued, CommandUUID still empty). An
// unfinished renewal of serial gives store.ErrConflict.
func (s *Service) RenewalProfile(ctx context.Context, e *store.Enrollment, serial, topic string, ttl time.Duration) ([]byte, *store.Renewal, error) {
	if e.Status != store.EnrollmentEnrolled || e.AppleEnrollmentID == "" {
		return nil, nil, ErrNotRenewable
	}
	t, err := s.Store.Tenant(ctx, e.TenantID)
	if err != nil {
		return nil, nil, fmt.Errorf("renewal of %s: tenant: %w", e.ID, err)
	}
	keys, err := s.Store.ProfileKeys(ctx, e.ID)
	if errors.Is(err, store.ErrNotFound) {
		// Enrolled before the keys were recorded: the current values are
		// what its profile had unless they changed since.
		u, err := s.Store.User(ctx, e.UserID)
		if err != nil {
			return nil, nil, fmt.Errorf("renewal of %s: user: %w", e.ID, err)
		}
		keys = &store.ProfileKeys{ManagedAppleID: u.ManagedAppleID, Topic: topic, ServerURL: s.URLs.ServerURL, CheckInURL: s.URLs.CheckInURL}
	} else if err != nil {
		return nil, nil, err
	}
	// The one capability that may change: com.apple.mdm.token follows
	// whether the tenant answers GetToken now.
	had := keys.GetToken
	if keys.GetToken, err = s.advertiseToken(ctx, e.TenantID); err != nil {
		return nil, nil, err
	}
	challenge, chHash := opaquetoken.New()
	signed, err := s.signedProfile(e, t, *keys, challenge)
	if err != nil {
		return nil, nil, err
	}
	if ttl <= 0 {
		ttl = DefaultRenewalSCEPChallengeTTL
	}
	now := s.now()
	r := &store.Renewal{Serial: serial, EnrollmentID: e.ID, QueuedAt: now}
	if err := s.Store.StartRenewal(ctx, r, &store.SCEPChallenge{Hash: chHash, EnrollmentID: e.ID, ExpiresAt: now.Add(ttl),
		Kind: store.ChallengeRenewal, Renews: serial}); err != nil {
		return nil, nil, err
	}
	if keys.GetToken != had {
		if err := s.Store.PutProfileKeys(ctx, e.ID, *keys, now); err != nil {
			return nil, nil, err
		}
	}
	return signed, r, nil
}
