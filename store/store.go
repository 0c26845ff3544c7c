// Package store defines Pomona's persistent data model and the narrow
// interfaces every storage backend implements. Backends live in
// sub-packages (sqlite, later postgres) and must all pass the contract
// suite in store/storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every backend returns (wrapped, so errors.Is works) for the
// conditions callers must tell apart.
var (
	// ErrNotFound: the addressed row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a uniqueness rule would be broken (a domain already owned
	// by a tenant, an email already used, a secret name already taken).
	ErrConflict = errors.New("conflict")
	// ErrInUse: the row is still referenced (a tenant with users, a domain
	// that users' emails are in).
	ErrInUse = errors.New("in use")
	// ErrClaimLost: a reconciler batch (ApplyReconcile) finishes claims
	// its holder no longer holds — its pass outlived the lease and the
	// enrollments were claimed again (or finished) by another holder, who
	// plans them anew. Nothing of the batch is written.
	ErrClaimLost = errors.New("reconciler claim lost")
)

// Tenant is one customer organisation: a name, the enterprise email
// domains it owns (each domain belongs to exactly one tenant) and its
// sign-in policy.
type Tenant struct {
	ID                  string
	Name                string
	Domains             []string // lower-case, sorted
	RequireSecondFactor bool
	CreatedAt           time.Time
	UpdatedAt           time.Time
	// Branding of the device sign-in pages, validated by package branding
	// before it is stored; "" means none (the default look).
	AccentColor string // "#rrggbb"
	Contact     string // the "contact IT" line, plain text
	PrivacyURL  string // https link to the privacy statement
	// LogoUpdatedAt is when the logo was last set; zero: no logo. Set by
	// SetTenantLogo only (CreateTenant and UpdateTenant ignore it).
	LogoUpdatedAt time.Time
}

// Logo is a tenant's logo for the sign-in pages.
type Logo struct {
	ContentType string // image/png or image/jpeg (package branding checks it)
	Data        []byte // at most branding.MaxLogoBytes
	UpdatedAt   time.Time
}

// User is a person who may enroll devices for a tenant.
type User struct {
	ID       string
	TenantID string
	// Email is what the person types on the device (lower-case). Its
	// domain is one of the tenant's domains.
	Email string
	// ManagedAppleID is the Managed Apple Account placed in the profile's
	// AssignedManagedAppleID. Defaults to Email.
	ManagedAppleID string
	Name           string
	// PasswordHash is a PHC-format argon2id string; empty means the user
	// has no password yet and cannot sign in.
	PasswordHash string
	// TOTPSecret is the sealed TOTP secret; nil means no second factor.
	TOTPSecret []byte
	// TOTPConfirmedAt is when the person proved possession of the secret;
	// zero while setup is unfinished.
	TOTPConfirmedAt time.Time
	Enabled         bool
	// TOTPLastStep is the last TOTP time step accepted: each code works once.
	TOTPLastStep int64
	// TokensNotBefore invalidates every access token issued before it
	// (forced re-authentication, password reset, disabling).
	TokensNotBefore time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
	LastSignInAt    time.Time
}

// Domain returns the part of the email after the last '@'.
func (u *User) Domain() string {
	for i := len(u.Email) - 1; i >= 0; i-- {
		if u.Email[i] == '@' {
			return u.Email[i+1:]
		}
	}
	return ""
}

// UserFilter selects users; zero fields match everything.
type UserFilter struct {
	TenantID string
	Email    string
	// After is the email of the last user of the previous page.
	After string
	// Limit caps the number of users returned; 0 means the backend default (100).
	Limit int
}

// APIKey is an admin API credential. Only a hash of the secret is kept.
type APIKey struct {
	ID         string // public part of the key, used to find the row
	Name       string
	SecretHash []byte // SHA-256 of the secret part
	CreatedAt  time.Time
	LastUsedAt time.Time
	RevokedAt  time.Time
}

// TenantStore keeps tenants and their domains.
type TenantStore interface {
	// CreateTenant stores t (ID set by the caller). A domain already owned
	// by any tenant gives ErrConflict and nothing is stored.
	CreateTenant(ctx context.Context, t *Tenant) error
	Tenant(ctx context.Context, id string) (*Tenant, error)
	TenantByDomain(ctx context.Context, domain string) (*Tenant, error)
	Tenants(ctx context.Context) ([]Tenant, error)
	// UpdateTenant reads the tenant, lets fn change it and writes it back
	// in one transaction. Removing a domain that users' emails are in
	// gives ErrInUse; adding one owned elsewhere gives ErrConflict.
	UpdateTenant(ctx context.Context, id string, fn func(*Tenant) error) (*Tenant, error)
	// DeleteTenant removes the tenant; with users left and cascade false it
	// gives ErrInUse, with cascade true the users go too, their enrollments
	// leaving tombstones (see TombstoneStore) stamped with end.
	DeleteTenant(ctx context.Context, id string, cascade bool, end Ending) error
	CountTenants(ctx context.Context) (int, error)
	// SetTenantLogo stores the tenant's logo, replacing any, or removes it
	// when l is nil; it sets the tenant's LogoUpdatedAt (zero when
	// removed). ErrNotFound: no such tenant.
	SetTenantLogo(ctx context.Context, tenantID string, l *Logo) error
	// TenantLogo returns the tenant's logo; ErrNotFound when it has none.
	TenantLogo(ctx context.Context, tenantID string) (*Logo, error)
}

// UserStore keeps users.
type UserStore interface {
	// CreateUser stores u (ID set by the caller). A taken email gives
	// ErrConflict; an email whose domain the tenant does not own, or an
	// unknown tenant, gives ErrNotFound.
	CreateUser(ctx context.Context, u *User) error
	User(ctx context.Context, id string) (*User, error)
	UserByEmail(ctx context.Context, email string) (*User, error)
	Users(ctx context.Context, f UserFilter) ([]User, error)
	// UpdateUser is an atomic read-modify-write of one user. fn must not
	// block (hash passwords before calling).
	UpdateUser(ctx context.Context, id string, fn func(*User) error) (*User, error)
	// DeleteUser removes the user and, by cascade, their enrollments; in
	// the same transaction every identity certificate of those
	// enrollments leaves a tombstone stamped with end. ErrNotFound: no
	// such user.
	DeleteUser(ctx context.Context, id string, end Ending) error
	CountUsers(ctx context.Context) (int, error)
}

// APIKeyStore keeps admin API keys.
type APIKeyStore interface {
	CreateAPIKey(ctx context.Context, k *APIKey) error
	APIKey(ctx context.Context, id string) (*APIKey, error)
	APIKeys(ctx context.Context) ([]APIKey, error)
	// RevokeAPIKey marks the key revoked; revoking twice is not an error.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
	CountAPIKeys(ctx context.Context) (int, error)
}

// SecretStore keeps named opaque blobs, already sealed by the caller (CA
// keys, TLS keys). Keeping them in the database lets every instance of a
// cluster share them.
type SecretStore interface {
	// CreateSecret stores value under name unless the name exists, in
	// which case it returns ErrConflict and leaves the old value.
	CreateSecret(ctx context.Context, name string, value []byte) error
	// PutSecret stores or replaces value under name.
	PutSecret(ctx context.Context, name string, value []byte) error
	Secret(ctx context.Context, name string) ([]byte, error)
}

// Store is everything a Pomona server needs from its database.
type Store interface {
	TenantStore
	UserStore
	APIKeyStore
	SecretStore
	TokenStore
	EnrollmentStore
	RateLimitStore
	MDMStore
	IdempotencyStore
	AuditStore
	WebhookStore
	LeaseStore
	AdminStore
	StatsStore
	RenewalStore
	TombstoneStore
	LifecycleStore
	DeviceRequestStore
	ABMStore
	GroupStore
	ProfileStore
	ProfileCertStore
	ProfileAdminStore
	ProfileDeliveryStore
	ProfileResultStore
	RevocationStore
	// Ping reports whether the database is reachable (readiness).
	Ping(ctx context.Context) error
	// Backend names the implementation for start-up output ("sqlite").
	Backend() string
	Close() error
}
