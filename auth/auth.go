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

	"github.com/pomona-mdm/pomona/credential"
	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/store"
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

// DefaultTokenTTL is how long an access token lets a device talk to
// Pomona before the person must sign in again.
const DefaultTokenTTL = 30 * 24 * time.Hour

// Service implements sign-in and token checks.
type Service struct {
	Store     Store
	Sealer    Sealer
	Password  password.Params
	TokenTTL  time.Duration
	Limits    credential.Limits
	Now       func() time.Time
	passwords *credential.Passwords
}

// New returns a Service with the defaults.
func New(s Store, sealer Sealer, pw password.Params) *Service {
	return &Service{Store: s, Sealer: sealer, Password: pw, TokenTTL: DefaultTokenTTL, Limits: credential.DefaultLimits, Now: time.Now,
		passwords: credential.NewPasswords(pw)}
}

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

const limitPrefix = "signin"

// begin counts a sign-in step for the account and the address and refuses
// it when either has too many recent failures (credential.Limits.Begin).
func (s *Service) begin(ctx context.Context, email, ip string) (*credential.Attempt, error) {
	return s.Limits.Begin(ctx, s.Store, limitPrefix, email, ip, s.now())
}

// VerifyPassword checks email and password for a sign-in at tenantID's
// page. A user of another tenant is refused like a wrong password.
func (s *Service) VerifyPassword(ctx context.Context, tenantID, email, pw, ip string) (*store.User, error) {
	at, err := s.begin(ctx, email, ip)
	if err != nil {
		return nil, err
	}
	u, err := s.Store.UserByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		at.Succeeded(ctx)
		return nil, err
	}
	hash := ""
	if u != nil && u.TenantID == tenantID {
		hash = u.PasswordHash
	}
	if !s.passwords.Verify(ctx, pw, hash) {
		at.Failed(ctx, s.now()) // counted by begin; again if a success reset the count meanwhile
		return nil, ErrBadCredentials
	}
	at.Succeeded(ctx)
	if !u.Enabled {
		return nil, ErrDisabled
	}
	if h := s.passwords.Rehash(pw, u.PasswordHash); h != "" {
		s.Store.UpdateUser(ctx, u.ID, func(x *store.User) error {
			if x.PasswordHash == u.PasswordHash {
				x.PasswordHash = h
			}
			return nil
		})
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
	at, err := s.begin(ctx, u.Email, ip)
	if err != nil {
		return nil, err
	}
	if u.TOTPSecret == nil {
		at.Succeeded(ctx) // no code to guess: not a failure (as before)
		return nil, ErrBadCode
	}
	step, ok, err := credential.VerifySealedCode(s.Sealer, u.TOTPSecret, totpContext(u.ID), code, s.now(), u.TOTPLastStep)
	if err != nil {
		at.Succeeded(ctx)
		return nil, fmt.Errorf("auth: open the TOTP secret of %s: %w", u.ID, err)
	}
	if !ok {
		at.Failed(ctx, s.now()) // counted by begin; again if a success reset the count meanwhile
		return nil, ErrBadCode
	}
	at.Succeeded(ctx)
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
	at, err := s.begin(ctx, u.Email, ip)
	if err != nil {
		return nil, err
	}
	step, ok := totp.Verify(secret, code, s.now(), 0)
	if !ok {
		at.Failed(ctx, s.now()) // counted by begin; again if a success reset the count meanwhile
		return nil, ErrBadCode
	}
	at.Succeeded(ctx)
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
	t, hash := opaquetoken.New()
	if err := s.Store.CreateAccessToken(ctx, &store.AccessToken{Hash: hash, UserID: u.ID, TenantID: u.TenantID,
		CreatedAt: now, ExpiresAt: now.Add(s.TokenTTL)}); err != nil {
		return "", err
	}
	s.Limits.Reset(ctx, s.Store, limitPrefix, u.Email)
	s.Store.UpdateUser(ctx, u.ID, func(x *store.User) error { x.LastSignInAt = now; return nil })
	return t, nil
}

// Grant is an authorized bearer: the token and its user.
type Grant struct {
	Token *store.AccessToken
	User  *store.User
}

// Authorize checks header, the value of an Authorization header
// ("Bearer <token>", RFC 6750), for the tenant tenantID: the token must
// exist, belong to the tenant, be unexpired, be newer than the user's last
// forced re-authentication, not revoked by the end of its enrollment, and
// the user must be enabled. AuthorizeStale skips these time and revocation
// checks: an expired or revoked token still identifies the user (CheckOut).
// Errors: ErrNoToken without a header; ErrInvalidToken (wrapped with the
// reason) for a malformed, unknown, foreign, expired or revoked token or a
// gone or disabled user; store errors as they are.
func (s *Service) Authorize(ctx context.Context, tenantID, header string) (*Grant, error) {
	return s.authorize(ctx, tenantID, header, false)
}

// AuthorizeStale is Authorize that accepts expired or revoked tokens.
func (s *Service) AuthorizeStale(ctx context.Context, tenantID, header string) (*Grant, error) {
	return s.authorize(ctx, tenantID, header, true)
}

func (s *Service) authorize(ctx context.Context, tenantID, header string, stale bool) (*Grant, error) {
	tok, err := opaquetoken.FromHeader(header)
	if errors.Is(err, opaquetoken.ErrMissing) {
		return nil, ErrNoToken
	}
	if err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	at, err := s.Store.AccessToken(ctx, opaquetoken.Hash(tok))
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
	return s.Check(at, u, tenantID, stale)
}

// Check is Authorize's decision on rows already read: the access token at
// and its user u (at.UserID) for tenantID. The MDM channel reads both with
// the rest of a request's sender in one store round trip and decides here,
// so both paths refuse the same tokens with the same errors.
func (s *Service) Check(at *store.AccessToken, u *store.User, tenantID string, stale bool) (*Grant, error) {
	if at.TenantID != tenantID {
		return nil, fmt.Errorf("%w: issued for another tenant", ErrInvalidToken)
	}
	if !stale {
		switch {
		case !s.now().Before(at.ExpiresAt):
			return nil, fmt.Errorf("%w: expired", ErrInvalidToken)
		case at.CreatedAt.Before(u.TokensNotBefore):
			return nil, fmt.Errorf("%w: revoked (re-authentication required)", ErrInvalidToken)
		case !at.RevokedAt.IsZero():
			return nil, fmt.Errorf("%w: revoked (its enrollment has ended)", ErrInvalidToken)
		case !u.Enabled:
			return nil, fmt.Errorf("%w: the user is disabled", ErrInvalidToken)
		}
	}
	return &Grant{Token: at, User: u}, nil
}
