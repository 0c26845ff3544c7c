// Package auth decides who may enroll: it checks passwords and second
// factors at sign-in (rate limited per account and per client address,
// across every instance sharing the store), issues the access tokens
// handed to devices, and authorizes the bearer tokens devices present
// afterwards. It knows nothing of HTTP.
package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/token"
	"github.com/pomona-mdm/pomona/totp"
)

// Store is what auth needs from storage.
type Store interface {
	store.UserStore
	store.TenantStore
	store.TokenStore
	store.RateLimitStore
}

// Sealer protects TOTP secrets at rest.
type Sealer interface {
	Seal(plaintext []byte, context string) []byte
	Open(sealed []byte, context string) ([]byte, error)
}

// Errors a sign-in can end with. The pages show one generic message for
// ErrBadCredentials whether the account or the password was wrong.
var (
	ErrBadCredentials = errors.New("wrong account or password")
	ErrBadCode        = errors.New("wrong or already used code")
	ErrDisabled       = errors.New("the account is disabled")
	ErrNoToken        = errors.New("no access token")
	ErrInvalidToken   = errors.New("the access token is invalid, expired or revoked")
)

// LockedError says sign-in is refused until RetryAfter.
type LockedError struct {
	RetryAfter time.Duration
	Scope      string // "account" or "address"
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed sign-ins for this %s; retry in %s", e.Scope, e.RetryAfter.Round(time.Second))
}

// Limits are the sign-in rate limits: at most Max failures per Window for
// one account, and at most IPMax for one client address.
type Limits struct {
	Window time.Duration
	Max    int
	IPMax  int
}

// DefaultLimits: 5 failures per account and 30 per address in 15 minutes.
var DefaultLimits = Limits{Window: 15 * time.Minute, Max: 5, IPMax: 30}

// DefaultTokenTTL is how long an access token lets a device talk to
// Pomona before the person must sign in again.
const DefaultTokenTTL = 30 * 24 * time.Hour

// Service implements sign-in and token checks.
type Service struct {
	Store    Store
	Sealer   Sealer
	Password password.Params
	TokenTTL time.Duration
	Limits   Limits
	Now      func() time.Time
	// dummy is verified when the account does not exist, so that a wrong
	// account costs as much time as a wrong password.
	dummy string
}

// New returns a Service with the defaults.
func New(s Store, sealer Sealer, pw password.Params) *Service {
	d, _ := password.Hash("pomona-dummy-password", pw)
	return &Service{Store: s, Sealer: sealer, Password: pw, TokenTTL: DefaultTokenTTL, Limits: DefaultLimits, Now: time.Now, dummy: d}
}

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

func accountKey(email string) string { return "signin:acct:" + email }
func addressKey(ip string) string    { return "signin:ip:" + ip }

// CheckLimits refuses a sign-in step when the account or the address has
// too many recent failures.
func (s *Service) CheckLimits(ctx context.Context, email, ip string) error {
	now := s.now()
	for _, c := range []struct {
		key, scope string
		max        int
	}{{accountKey(email), "account", s.Limits.Max}, {addressKey(ip), "address", s.Limits.IPMax}} {
		n, start, err := s.Store.RateLimitCount(ctx, c.key, s.Limits.Window, now)
		if err != nil {
			return err
		}
		if n >= c.max {
			return &LockedError{RetryAfter: start.Add(s.Limits.Window).Sub(now), Scope: c.scope}
		}
	}
	return nil
}

func (s *Service) fail(ctx context.Context, email, ip string) {
	now := s.now()
	s.Store.RateLimitHit(ctx, accountKey(email), s.Limits.Window, now)
	s.Store.RateLimitHit(ctx, addressKey(ip), s.Limits.Window, now)
}

// VerifyPassword checks email and password for a sign-in at tenantID's
// page. A user of another tenant is refused like a wrong password.
func (s *Service) VerifyPassword(ctx context.Context, tenantID, email, pw, ip string) (*store.User, error) {
	if err := s.CheckLimits(ctx, email, ip); err != nil {
		return nil, err
	}
	u, err := s.Store.UserByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if u == nil || u.TenantID != tenantID || u.PasswordHash == "" {
		password.Verify(pw, s.dummy)
		s.fail(ctx, email, ip)
		return nil, ErrBadCredentials
	}
	if err := password.Verify(pw, u.PasswordHash); err != nil {
		s.fail(ctx, email, ip)
		return nil, ErrBadCredentials
	}
	if !u.Enabled {
		return nil, ErrDisabled
	}
	if password.NeedsRehash(u.PasswordHash, s.Password) {
		if h, err := password.Hash(pw, s.Password); err == nil {
			s.Store.UpdateUser(ctx, u.ID, func(x *store.User) error {
				if x.PasswordHash == u.PasswordHash {
					x.PasswordHash = h
				}
				return nil
			})
		}
	}
	return u, nil
}

// Second-factor steps after the password.
const (
	SecondFactorVerify = "verify" // the user has a TOTP secret: ask for a code
	SecondFactorSetup  = "setup"  // the tenant requires one and the user has none
	SecondFactorNone   = "none"
)

// NextStep says what follows a correct password.
func NextStep(t *store.Tenant, u *store.User) string {
	switch {
	case u.TOTPSecret != nil && !u.TOTPConfirmedAt.IsZero():
		return SecondFactorVerify
	case t.RequireSecondFactor:
		return SecondFactorSetup
	}
	return SecondFactorNone
}

func totpContext(userID string) string { return "totp:" + userID }

// VerifyTOTP checks a code against the user's secret; each code works once.
func (s *Service) VerifyTOTP(ctx context.Context, userID, code, ip string) (*store.User, error) {
	u, err := s.Store.User(ctx, userID)
	if err != nil {
		return nil, err
	}
	if err := s.CheckLimits(ctx, u.Email, ip); err != nil {
		return nil, err
	}
	if u.TOTPSecret == nil {
		return nil, ErrBadCode
	}
	secret, err := s.Sealer.Open(u.TOTPSecret, totpContext(u.ID))
	if err != nil {
		return nil, fmt.Errorf("auth: open the TOTP secret of %s: %w", u.ID, err)
	}
	step, ok := totp.Verify(secret, code, s.now(), u.TOTPLastStep)
	if !ok {
		s.fail(ctx, u.Email, ip)
		return nil, ErrBadCode
	}
	// Record the step atomically: of two sign-ins racing with one code,
	// only one gets through.
	return s.Store.UpdateUser(ctx, u.ID, func(x *store.User) error {
		if step <= x.TOTPLastStep {
			return ErrBadCode
		}
		x.TOTPLastStep = step
		return nil
	})
}

// ConfirmTOTP finishes second-factor setup: the code must match the new
// secret; only then is the secret stored (sealed).
func (s *Service) ConfirmTOTP(ctx context.Context, userID string, secret []byte, code, ip string) (*store.User, error) {
	u, err := s.Store.User(ctx, userID)
	if err != nil {
		return nil, err
	}
	if err := s.CheckLimits(ctx, u.Email, ip); err != nil {
		return nil, err
	}
	step, ok := totp.Verify(secret, code, s.now(), 0)
	if !ok {
		s.fail(ctx, u.Email, ip)
		return nil, ErrBadCode
	}
	sealed := s.Sealer.Seal(secret, totpContext(u.ID))
	return s.Store.UpdateUser(ctx, u.ID, func(x *store.User) error {
		if x.TOTPSecret != nil && !x.TOTPConfirmedAt.IsZero() {
			return errors.New("a second factor was set up meanwhile; sign in again")
		}
		x.TOTPSecret = sealed
		x.TOTPConfirmedAt = s.now()
		x.TOTPLastStep = step
		return nil
	})
}

// IssueToken ends a successful sign-in: it records the sign-in, clears the
// account's failure counter and returns a new access token.
func (s *Service) IssueToken(ctx context.Context, u *store.User) (string, error) {
	now := s.now()
	t, hash := token.New()
	if err := s.Store.CreateAccessToken(ctx, &store.AccessToken{Hash: hash, UserID: u.ID, TenantID: u.TenantID,
		CreatedAt: now, ExpiresAt: now.Add(s.TokenTTL)}); err != nil {
		return "", err
	}
	s.Store.RateLimitReset(ctx, accountKey(u.Email))
	s.Store.UpdateUser(ctx, u.ID, func(x *store.User) error { x.LastSignInAt = now; return nil })
	return t, nil
}

// Grant is an authorized bearer: the token and its user.
type Grant struct {
	Token *store.AccessToken
	User  *store.User
}

// Authorize checks an Authorization header for tenantID: the token must
// exist, belong to the tenant, be unexpired, be newer than the user's last
// forced re-authentication, and the user must be enabled. With allowStale
// an expired or revoked token still identifies the user (for CheckOut).
func (s *Service) Authorize(ctx context.Context, tenantID, header string) (*Grant, error) {
	return s.authorize(ctx, tenantID, header, false)
}

// AuthorizeStale is Authorize that accepts expired or revoked tokens.
func (s *Service) AuthorizeStale(ctx context.Context, tenantID, header string) (*Grant, error) {
	return s.authorize(ctx, tenantID, header, true)
}

func (s *Service) authorize(ctx context.Context, tenantID, header string, stale bool) (*Grant, error) {
	tok, err := token.FromHeader(header)
	if errors.Is(err, token.ErrMissing) {
		return nil, ErrNoToken
	}
	if err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	at, err := s.Store.AccessToken(ctx, token.Hash(tok))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown", ErrInvalidToken)
	}
	if err != nil {
		return nil, err
	}
	if at.TenantID != tenantID {
		return nil, fmt.Errorf("%w: issued for another tenant", ErrInvalidToken)
	}
	u, err := s.Store.User(ctx, at.UserID)
	if err != nil {
		return nil, fmt.Errorf("%w: the user is gone", ErrInvalidToken)
	}
	if !stale {
		switch {
		case !s.now().Before(at.ExpiresAt):
			return nil, fmt.Errorf("%w: expired", ErrInvalidToken)
		case at.CreatedAt.Before(u.TokensNotBefore):
			return nil, fmt.Errorf("%w: revoked (re-authentication required)", ErrInvalidToken)
		case !u.Enabled:
			return nil, fmt.Errorf("%w: the user is disabled", ErrInvalidToken)
		}
	}
	return &Grant{Token: at, User: u}, nil
}
