// Package adminaccount holds the rules for web-console accounts: invitations
// and resets through one-time setup links, sign-in with a password and a
// TOTP code (rate-limited, each code once), sessions with an idle and an
// absolute timeout, and what each role may do. It is independent of HTTP.
package adminaccount

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pomona-mdm/pomona/credential"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/totp"
)

// Store is what console accounts need from storage.
type Store interface {
	store.AdminStore
	store.RateLimitStore
}

// Sealer seals TOTP secrets at rest.
type Sealer interface {
	Seal(plaintext []byte, context string) []byte
	Open(sealed []byte, context string) ([]byte, error)
}

// Permission is what an action needs.
type Permission int

const (
	// Read: see every page.
	Read Permission = iota
	// Support: help-desk actions (resend a command, wake a device, force a
	// user to re-authenticate).
	Support
	// Manage: every change except console accounts.
	Manage
	// Accounts: create, change and disable console accounts.
	Accounts
)

// Roles lists the roles, most powerful first.
var Roles = []string{store.RoleOwner, store.RoleAdmin, store.RoleHelpDesk, store.RoleAuditor}

// RoleTitle is a role's display name.
func RoleTitle(role string) string {
	switch role {
	case store.RoleOwner:
		return "Owner"
	case store.RoleAdmin:
		return "Admin"
	case store.RoleHelpDesk:
		return "Help desk"
	case store.RoleAuditor:
		return "Auditor"
	}
	return role
}

// Can reports whether role has permission p.
func Can(role string, p Permission) bool {
	switch role {
	case store.RoleOwner:
		return true
	case store.RoleAdmin:
		return p <= Manage
	case store.RoleHelpDesk:
		return p <= Support
	case store.RoleAuditor:
		return p == Read
	}
	return false
}

// Errors callers show to people.
var (
	ErrBadCredentials = errors.New("the email, password or code is not right")
	ErrBadSetupLink   = errors.New("this setup link is invalid, used or expired: ask an owner for a new one")
	ErrNoSession      = errors.New("not signed in")
	ErrLastOwner      = problem.Coded(problem.Conflict, "last_owner", "the last enabled owner cannot be demoted or disabled: make another account owner first")
	ErrSelf           = problem.Coded(problem.Conflict, "self", "you cannot change your own role or disable your own account")
)

// Service implements console accounts on a Store.
type Service struct {
	Store    Store
	Sealer   Sealer
	Password password.Params
	Now      func() time.Time
	// IdleTimeout ends a session after this long without a request.
	IdleTimeout time.Duration
	// SessionTTL ends a session this long after sign-in, however active.
	SessionTTL time.Duration
	// SetupTTL is how long an invitation or reset link works.
	SetupTTL  time.Duration
	Limits    credential.Limits
	passwords *credential.Passwords
}

// Defaults.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultSessionTTL  = 12 * time.Hour
	DefaultSetupTTL    = 72 * time.Hour
	// touchEvery bounds session writes to one per minute per session.
	touchEvery = time.Minute
)

// New returns a Service with the defaults.
func New(s Store, sealer Sealer, pw password.Params) *Service {
	return &Service{Store: s, Sealer: sealer, Password: pw, Now: time.Now, IdleTimeout: DefaultIdleTimeout,
		SessionTTL: DefaultSessionTTL, SetupTTL: DefaultSetupTTL, Limits: credential.DefaultLimits, passwords: credential.NewPasswords(pw)}
}

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

func totpContext(id string) string { return "console-totp:" + id }

// SetupContext is the sealing context of a TOTP secret offered on a setup page.
func SetupContext(id string) string { return "console-setup:" + id }

func normEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	at := strings.LastIndexByte(e, '@')
	if at < 1 || at == len(e)-1 || len(e) > 254 || strings.ContainsAny(e, " \t<>\"") {
		return "", problem.Validation("email", "must be an email address such as ops@example.com")
	}
	return e, nil
}

func checkRole(role string) error {
	for _, r := range Roles {
		if r == role {
			return nil
		}
	}
	return problem.Validation("role", "must be one of owner, admin, helpdesk, auditor")
}

// Invite creates an account that can only be set up through the returned
// one-time token (the setup link), valid for SetupTTL.
func (s *Service) Invite(ctx context.Context, email, name, role string) (*store.Admin, string, error) {
	e, err := normEmail(email)
	if err != nil {
		return nil, "", err
	}
	if err := checkRole(role); err != nil {
		return nil, "", err
	}
	if len(name) > 200 {
		return nil, "", problem.Validation("name", "is at most 200 characters")
	}
	tok, tokHash := opaquetoken.New()
	now := s.now()
	a := &store.Admin{ID: directory.NewID("ad"), Email: e, Name: strings.TrimSpace(name), Role: role, Enabled: true,
		SetupHash: tokHash, SetupExpiresAt: now.Add(s.SetupTTL), CreatedAt: now, UpdatedAt: now}
	if err := s.Store.CreateAdmin(ctx, a); err != nil {
		return nil, "", err
	}
	return a, tok, nil
}

// InviteFirstOwner creates the first owner account when there is no
// account at all; whoever opens the setup link chooses its email. It
// returns "" when accounts exist already.
func (s *Service) InviteFirstOwner(ctx context.Context) (string, error) {
	n, err := s.Store.CountAdmins(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	tok, tokHash := opaquetoken.New()
	now := s.now()
	err = s.Store.CreateAdmin(ctx, &store.Admin{ID: directory.NewID("ad"), Email: "", Role: store.RoleOwner, Enabled: true,
		SetupHash: tokHash, SetupExpiresAt: now.Add(s.SetupTTL), CreatedAt: now, UpdatedAt: now})
	if errors.Is(err, store.ErrConflict) {
		return "", nil // another instance made it at the same moment
	}
	return tok, err
}

// ResetSetup clears an account's password and second factor, ends its
// sessions and returns a new setup token.
func (s *Service) ResetSetup(ctx context.Context, id string) (*store.Admin, string, error) {
	tok, tokHash := opaquetoken.New()
	now := s.now()
	a, err := s.Store.UpdateAdmin(ctx, id, func(a *store.Admin) error {
		a.PasswordHash, a.TOTPSecret, a.TOTPLastStep = "", nil, 0
		a.SetupHash, a.SetupExpiresAt, a.UpdatedAt = tokHash, now.Add(s.SetupTTL), now
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return a, tok, s.Store.DeleteAdminSessions(ctx, id)
}

// SetupAccount returns the account a valid setup token belongs to.
func (s *Service) SetupAccount(ctx context.Context, token string) (*store.Admin, error) {
	if token == "" {
		return nil, ErrBadSetupLink
	}
	a, err := s.Store.AdminBySetupHash(ctx, opaquetoken.Hash(token))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrBadSetupLink
	}
	if err != nil {
		return nil, err
	}
	if !a.Enabled || s.now().After(a.SetupExpiresAt) {
		return nil, ErrBadSetupLink
	}
	return a, nil
}

// CompleteSetup sets the password and the second factor of the account
// the token names; secret is the TOTP secret the page showed and code must
// match it. The token then stops working.
// An account without an email (the first owner) takes email.
func (s *Service) CompleteSetup(ctx context.Context, token, email, pw string, secret []byte, code, ip string) (*store.Admin, error) {
	a, err := s.SetupAccount(ctx, token)
	if err != nil {
		return nil, err
	}
	if a.Email == "" {
		if a.Email, err = normEmail(email); err != nil {
			return nil, err
		}
	}
	if err := CheckPassword(pw); err != nil {
		return nil, err
	}
	at, err := s.begin(ctx, a.Email, ip)
	if err != nil {
		return nil, err
	}
	step, ok := totp.Verify(secret, code, s.now(), 0)
	if !ok {
		at.Failed(ctx, s.now()) // counted by begin; again if a success reset the count meanwhile
		return nil, problem.Validation("code", "does not match: check the clock of the phone and enter the current code")
	}
	at.Succeeded(ctx)
	h, err := password.Hash(pw, s.Password)
	if err != nil {
		return nil, err
	}
	sealed := s.Sealer.Seal(secret, totpContext(a.ID))
	th := opaquetoken.Hash(token)
	return s.Store.UpdateAdmin(ctx, a.ID, func(x *store.Admin) error {
		if string(x.SetupHash) != string(th) {
			return ErrBadSetupLink // used meanwhile
		}
		x.Email, x.PasswordHash, x.TOTPSecret, x.TOTPLastStep = a.Email, h, sealed, step
		x.SetupHash, x.SetupExpiresAt, x.UpdatedAt = nil, time.Time{}, s.now()
		return nil
	})
}

const limitPrefix = "console"

// begin counts a sign-in step for the account and the address and refuses
// it when either has too many recent failures (credential.Limits.Begin).
func (s *Service) begin(ctx context.Context, email, ip string) (*credential.Attempt, error) {
	return s.Limits.Begin(ctx, s.Store, limitPrefix, email, ip, s.now())
}

// SignIn checks email, password and TOTP code together (so a wrong
// password is not told apart from a wrong code) and records the sign-in.
func (s *Service) SignIn(ctx context.Context, email, pw, code, ip string) (*store.Admin, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	at, err := s.begin(ctx, e, ip)
	if err != nil {
		return nil, err
	}
	a, err := s.Store.AdminByEmail(ctx, e)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		at.Succeeded(ctx)
		return nil, err
	}
	hash := ""
	if a != nil && a.Ready() && a.Enabled {
		hash = a.PasswordHash
	}
	if !s.passwords.Verify(ctx, pw, hash) {
		at.Failed(ctx, s.now()) // counted by begin; again if a success reset the count meanwhile
		return nil, ErrBadCredentials
	}
	step, ok, err := credential.VerifySealedCode(s.Sealer, a.TOTPSecret, totpContext(a.ID), code, s.now(), a.TOTPLastStep)
	if err != nil {
		at.Succeeded(ctx)
		return nil, fmt.Errorf("adminaccount: open the TOTP secret of %s: %w", a.ID, err)
	}
	if !ok {
		at.Failed(ctx, s.now()) // counted by begin; again if a success reset the count meanwhile
		return nil, ErrBadCredentials
	}
	at.Succeeded(ctx)
	rehash := s.passwords.Rehash(pw, a.PasswordHash)
	a, err = s.Store.UpdateAdmin(ctx, a.ID, func(x *store.Admin) error {
		if step <= x.TOTPLastStep {
			return ErrBadCredentials // the code was used meanwhile
		}
		x.TOTPLastStep, x.LastSignInAt = step, s.now()
		if rehash != "" {
			x.PasswordHash = rehash
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Limits.Reset(ctx, s.Store, limitPrefix, e)
	return a, nil
}

// StartSession creates a session and returns the cookie value.
func (s *Service) StartSession(ctx context.Context, a *store.Admin, remote string) (string, error) {
	tok, tokHash := opaquetoken.New()
	now := s.now()
	err := s.Store.CreateAdminSession(ctx, &store.AdminSession{Hash: tokHash, AdminID: a.ID, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(s.SessionTTL), Remote: remote})
	return tok, err
}

// Session returns the account of a live session and records activity.
// Expired sessions are deleted and give ErrNoSession.
func (s *Service) Session(ctx context.Context, cookie string) (*store.Admin, error) {
	if cookie == "" {
		return nil, ErrNoSession
	}
	h := opaquetoken.Hash(cookie)
	sess, err := s.Store.AdminSession(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if now.After(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) > s.IdleTimeout {
		s.Store.DeleteAdminSession(ctx, h)
		return nil, ErrNoSession
	}
	a, err := s.Store.Admin(ctx, sess.AdminID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	if !a.Enabled || !a.Ready() {
		s.Store.DeleteAdminSession(ctx, h)
		return nil, ErrNoSession
	}
	if now.Sub(sess.LastSeenAt) > touchEvery {
		s.Store.TouchAdminSession(ctx, h, now)
	}
	return a, nil
}

// EndSession signs out.
func (s *Service) EndSession(ctx context.Context, cookie string) error {
	if cookie == "" {
		return nil
	}
	return s.Store.DeleteAdminSession(ctx, opaquetoken.Hash(cookie))
}

// CSRFToken is the anti-forgery token of a session: derived from the
// secret cookie, so a page of another origin can neither read nor compute it.
func CSRFToken(cookie string) string {
	h := sha256.Sum256([]byte("pomona-console-csrf\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Update changes another account's role or enabled flag. The last enabled
// owner stays an enabled owner; nobody changes their own role or state.
func (s *Service) Update(ctx context.Context, actorID, id string, role *string, enabled *bool) (*store.Admin, error) {
	if actorID == id {
		return nil, ErrSelf
	}
	if role != nil {
		if err := checkRole(*role); err != nil {
			return nil, err
		}
	}
	all, err := s.Store.Admins(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.Store.UpdateAdmin(ctx, id, func(x *store.Admin) error {
		wasOwner := x.Role == store.RoleOwner && x.Enabled
		if role != nil {
			x.Role = *role
		}
		if enabled != nil {
			x.Enabled = *enabled
		}
		if wasOwner && (x.Role != store.RoleOwner || !x.Enabled) {
			owners := 0
			for _, o := range all {
				if o.Role == store.RoleOwner && o.Enabled && o.ID != id {
					owners++
				}
			}
			if owners == 0 {
				return ErrLastOwner
			}
		}
		x.UpdatedAt = s.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !a.Enabled {
		err = s.Store.DeleteAdminSessions(ctx, id)
	}
	return a, err
}

// PendingOwner is the id of the first owner while no console account has
// been set up yet (the first start's setup link was shown once: the
// start-up summary says how to get a new one); "" once any account has a
// password.
func (s *Service) PendingOwner(ctx context.Context) (string, error) {
	all, err := s.Store.Admins(ctx)
	if err != nil {
		return "", err
	}
	pending := ""
	for _, a := range all {
		if a.PasswordHash != "" {
			return "", nil
		}
		if a.Role == store.RoleOwner && pending == "" {
			pending = a.ID
		}
	}
	return pending, nil
}

// MinPassword is the shortest console password, in characters (Unicode
// code points): longer than a device user's (directory.MinPassword, 8)
// because a console account manages every device of every tenant. The
// setup page shows it and sets it as the field's minlength.
const MinPassword = 12

// CheckPassword applies the console password rules: at least MinPassword
// characters, and directory.CheckPassword's (at most
// directory.MaxPassword bytes). The error is a problem.Validation on
// "password".
func CheckPassword(pw string) error {
	if utf8.RuneCountInString(pw) < MinPassword {
		return problem.Validation("password", "must be at least %d characters", MinPassword)
	}
	return directory.CheckPassword(pw)
}
