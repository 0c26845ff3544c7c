// Package directory holds the rules for tenants and users: what a valid
// name, domain, email or password is, how a tenant is named in requests
// (by id or by one of its domains), and what changes together (a new
// password also ends every session of that user), applied as each tenant
// or user is written. The application layer (package app) calls it for
// every tenant and user use case of the API, the console and the CLI;
// console accounts (package adminaccount) share its password rules.
package directory

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pomona-mdm/pomona/address"
	"github.com/pomona-mdm/pomona/branding"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// invalid is input that is well-formed but not acceptable: a
// problem.Validation (422, code validation_failed, naming field).
func invalid(field, format string, args ...any) error {
	return problem.Validation(field, format, args...)
}

// Store is what the directory needs from storage.
type Store interface {
	store.TenantStore
	store.UserStore
}

// Service applies the rules on top of a Store.
type Service struct {
	Store Store
	// Password sets the argon2id cost of new hashes.
	Password password.Params
	Now      func() time.Time
	// Disabled, when set, is called after UpdateUser turned an enabled
	// user disabled (the change is committed): the server's
	// --unenroll-on-disable policy ends the user's enrollments there.
	Disabled func(ctx context.Context, u *store.User)
}

// New returns a Service with the default password cost.
func New(s Store) *Service {
	return &Service{Store: s, Password: password.Default, Now: time.Now}
}

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

// NewID returns a random identifier with a readable prefix ("tn_…", "us_…").
func NewID(prefix string) string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + "_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// Password length rules. The upper bound keeps hashing cost bounded.
const (
	MinPassword = 8
	MaxPassword = 256
	maxName     = 200
)

func checkName(field, name string, required bool) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" && required {
		return "", invalid(field, "is required")
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxName {
		return "", invalid(field, "must be valid text of at most %d characters", maxName)
	}
	for _, r := range name {
		if unicode.IsControl(r) { // C0, DEL and C1 (U+009B is a CSI to a terminal)
			return "", invalid(field, "must not contain control characters")
		}
	}
	return name, nil
}

// CheckPassword applies the password rules.
func CheckPassword(pw string) error {
	if utf8.RuneCountInString(pw) < MinPassword {
		return invalid("password", "must be at least %d characters", MinPassword)
	}
	if len(pw) > MaxPassword {
		return invalid("password", "must be at most %d bytes", MaxPassword)
	}
	if !utf8.ValidString(pw) {
		return invalid("password", "must be valid UTF-8")
	}
	return nil
}

func normDomains(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, invalid("domains", "at least one domain is required")
	}
	seen := map[string]bool{}
	var out []string
	for _, d := range in {
		n, err := address.Domain(d)
		if err != nil {
			return nil, invalid("domains", "%v", err)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// TenantInput creates a tenant. RequireSecondFactor defaults to true.
type TenantInput struct {
	Name                string
	Domains             []string
	RequireSecondFactor *bool
}

func (s *Service) CreateTenant(ctx context.Context, in TenantInput) (*store.Tenant, error) {
	name, err := checkName("name", in.Name, true)
	if err != nil {
		return nil, err
	}
	domains, err := normDomains(in.Domains)
	if err != nil {
		return nil, err
	}
	now := s.now()
	t := &store.Tenant{ID: NewID("tn"), Name: name, Domains: domains, RequireSecondFactor: true, CreatedAt: now, UpdatedAt: now}
	if in.RequireSecondFactor != nil {
		t.RequireSecondFactor = *in.RequireSecondFactor
	}
	if err := s.Store.CreateTenant(ctx, t); err != nil {
		return nil, err
	}
	return s.Store.Tenant(ctx, t.ID)
}

// TenantPatch changes the fields that are set. The branding fields
// (AccentColor, Contact, PrivacyURL) are checked by package branding; ""
// removes one.
type TenantPatch struct {
	Name                *string
	Domains             *[]string
	RequireSecondFactor *bool
	AccentColor         *string
	Contact             *string
	PrivacyURL          *string
}

// brandingField checks one branding field with check, as a validation problem
// naming field.
func brandingField(field string, v *string, check func(string) (string, error)) (string, error) {
	if v == nil {
		return "", nil
	}
	out, err := check(*v)
	if err != nil {
		return "", invalid(field, "%s", strings.TrimPrefix(err.Error(), branding.ErrInvalid.Error()+": "))
	}
	return out, nil
}

// SetLogo stores a tenant's sign-in page logo after branding.Logo checked
// it (PNG or JPEG, size and dimensions limited; a validation problem on field
// "logo" otherwise); nil or empty data removes the logo.
func (s *Service) SetLogo(ctx context.Context, tenantID string, data []byte) error {
	if len(data) == 0 {
		return s.Store.SetTenantLogo(ctx, tenantID, nil)
	}
	ct, err := branding.Logo(data)
	if err != nil {
		return invalid("logo", "%s", strings.TrimPrefix(err.Error(), branding.ErrInvalid.Error()+": logo: "))
	}
	return s.Store.SetTenantLogo(ctx, tenantID, &store.Logo{ContentType: ct, Data: data, UpdatedAt: s.now()})
}

func (s *Service) UpdateTenant(ctx context.Context, id string, p TenantPatch) (*store.Tenant, error) {
	var name string
	var domains []string
	var err error
	if p.Name != nil {
		if name, err = checkName("name", *p.Name, true); err != nil {
			return nil, err
		}
	}
	if p.Domains != nil {
		if domains, err = normDomains(*p.Domains); err != nil {
			return nil, err
		}
	}
	accent, err := brandingField("accent_color", p.AccentColor, branding.Accent)
	if err != nil {
		return nil, err
	}
	contact, err := brandingField("contact", p.Contact, branding.Contact)
	if err != nil {
		return nil, err
	}
	privacy, err := brandingField("privacy_url", p.PrivacyURL, branding.PrivacyURL)
	if err != nil {
		return nil, err
	}
	return s.Store.UpdateTenant(ctx, id, func(t *store.Tenant) error {
		if p.AccentColor != nil {
			t.AccentColor = accent
		}
		if p.Contact != nil {
			t.Contact = contact
		}
		if p.PrivacyURL != nil {
			t.PrivacyURL = privacy
		}
		if p.Name != nil {
			t.Name = name
		}
		if p.Domains != nil {
			t.Domains = domains
		}
		if p.RequireSecondFactor != nil {
			t.RequireSecondFactor = *p.RequireSecondFactor
		}
		t.UpdatedAt = s.now()
		return nil
	})
}

// ResolveTenant finds a tenant by id or by one of its domains.
func (s *Service) ResolveTenant(ctx context.Context, ref string) (*store.Tenant, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, invalid("tenant", "is required")
	}
	if strings.HasPrefix(ref, "tn_") {
		return s.Store.Tenant(ctx, ref)
	}
	d, err := address.Domain(ref)
	if err != nil {
		return nil, invalid("tenant", "%q is neither a tenant id nor a domain", ref)
	}
	return s.Store.TenantByDomain(ctx, d)
}

// UserInput creates a user. Tenant may be empty: the email's domain then
// names it. Password may be empty: the user then cannot sign in until an
// admin sets one.
type UserInput struct {
	Tenant         string
	Email          string
	ManagedAppleID string
	Name           string
	Password       string
	Enabled        *bool
}

// ErrTenantDomain is returned when the email's domain is not the tenant's.
var ErrTenantDomain = errors.New("the email's domain is not one of the tenant's domains")

func (s *Service) CreateUser(ctx context.Context, in UserInput) (*store.User, error) {
	email, domain, err := address.Email(in.Email)
	if err != nil {
		return nil, invalid("email", "%v", err)
	}
	maid := email
	if strings.TrimSpace(in.ManagedAppleID) != "" {
		if maid, _, err = address.Email(in.ManagedAppleID); err != nil {
			return nil, invalid("managed_apple_id", "%v", err)
		}
	}
	name, err := checkName("name", in.Name, false)
	if err != nil {
		return nil, err
	}
	var hash string
	if in.Password != "" {
		if err := CheckPassword(in.Password); err != nil {
			return nil, err
		}
	}
	ref := in.Tenant
	if ref == "" {
		ref = domain
	}
	t, err := s.ResolveTenant(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if in.Tenant == "" {
			return nil, invalid("email", "no tenant owns the domain %s: add it to a tenant first", domain)
		}
		return nil, invalid("tenant", "no tenant %q (give a tenant id or one of its domains)", in.Tenant)
	}
	if err != nil {
		return nil, err
	}
	if !contains(t.Domains, domain) {
		return nil, invalid("email", "%s is not one of the domains of tenant %q (%s)", domain, t.Name, strings.Join(t.Domains, ", "))
	}
	if in.Password != "" {
		if hash, err = password.Hash(in.Password, s.Password); err != nil {
			return nil, err
		}
	}
	now := s.now()
	u := &store.User{ID: NewID("us"), TenantID: t.ID, Email: email, ManagedAppleID: maid, Name: name,
		PasswordHash: hash, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if in.Enabled != nil {
		u.Enabled = *in.Enabled
	}
	if err := s.Store.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// UserPatch changes the fields that are set.
type UserPatch struct {
	Email          *string
	ManagedAppleID *string
	Name           *string
	Enabled        *bool
}

func (s *Service) UpdateUser(ctx context.Context, id string, p UserPatch) (*store.User, error) {
	var email, maid, name string
	var err error
	if p.Email != nil {
		if email, _, err = address.Email(*p.Email); err != nil {
			return nil, invalid("email", "%v", err)
		}
	}
	if p.ManagedAppleID != nil {
		if maid, _, err = address.Email(*p.ManagedAppleID); err != nil {
			return nil, invalid("managed_apple_id", "%v", err)
		}
	}
	if p.Name != nil {
		if name, err = checkName("name", *p.Name, false); err != nil {
			return nil, err
		}
	}
	disabled := false
	u, err := s.Store.UpdateUser(ctx, id, func(u *store.User) error {
		now := s.now()
		disabled = false
		if p.Email != nil {
			u.Email = email
		}
		if p.ManagedAppleID != nil {
			u.ManagedAppleID = maid
		}
		if p.Name != nil {
			u.Name = name
		}
		if p.Enabled != nil {
			if u.Enabled && !*p.Enabled {
				// Disabling ends every session: the devices must sign in again
				// (and will be refused).
				u.TokensNotBefore = now
				disabled = true
			}
			u.Enabled = *p.Enabled
		}
		u.UpdatedAt = now
		return nil
	})
	if err == nil && disabled && s.Disabled != nil {
		s.Disabled(ctx, u)
	}
	return u, err
}

// SetPassword replaces the password and ends every session of the user.
func (s *Service) SetPassword(ctx context.Context, id, pw string) (*store.User, error) {
	if err := CheckPassword(pw); err != nil {
		return nil, err
	}
	hash, err := password.Hash(pw, s.Password)
	if err != nil {
		return nil, err
	}
	return s.Store.UpdateUser(ctx, id, func(u *store.User) error {
		now := s.now()
		u.PasswordHash = hash
		u.TokensNotBefore = now
		u.UpdatedAt = now
		return nil
	})
}

// ResetSecondFactor removes the user's TOTP secret; the next sign-in sets
// up a new one (when the tenant requires it).
func (s *Service) ResetSecondFactor(ctx context.Context, id string) (*store.User, error) {
	return s.Store.UpdateUser(ctx, id, func(u *store.User) error {
		u.TOTPSecret = nil
		u.TOTPConfirmedAt = time.Time{}
		u.UpdatedAt = s.now()
		return nil
	})
}

// Reauthenticate invalidates every access token of the user, so each of
// the user's devices must sign in again.
func (s *Service) Reauthenticate(ctx context.Context, id string) (*store.User, error) {
	return s.Store.UpdateUser(ctx, id, func(u *store.User) error {
		now := s.now()
		u.TokensNotBefore = now
		u.UpdatedAt = now
		return nil
	})
}

// SecondFactorState describes a user's TOTP enrolment.
func SecondFactorState(u *store.User) string {
	switch {
	case u.TOTPSecret == nil:
		return "none"
	case u.TOTPConfirmedAt.IsZero():
		return "pending"
	}
	return "active"
}
