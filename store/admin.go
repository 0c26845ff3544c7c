package store

import (
	"context"
	"time"
)

// Console roles, from most to least powerful.
const (
	RoleOwner    = "owner"    // everything, including console accounts
	RoleAdmin    = "admin"    // everything except console accounts
	RoleHelpDesk = "helpdesk" // read, resend commands, wake devices, force re-authentication
	RoleAuditor  = "auditor"  // read only
)

// Admin is a web-console account. It signs in with a password and a TOTP
// code; until both are set it has only a one-time setup link.
type Admin struct {
	ID           string
	Email        string // lower-case
	Name         string
	Role         string
	PasswordHash string // PHC argon2id; empty until set up
	TOTPSecret   []byte // sealed; nil until set up
	TOTPLastStep int64  // each code works once
	Enabled      bool
	// SetupHash is the SHA-256 of the one-time setup token (invitation or
	// reset); nil when none is outstanding.
	SetupHash      []byte
	SetupExpiresAt time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LastSignInAt   time.Time
}

// Ready reports whether the account has finished setup.
func (a *Admin) Ready() bool { return a.PasswordHash != "" && len(a.TOTPSecret) > 0 }

// AdminSession is a signed-in console session. Only the SHA-256 of the
// cookie value is stored.
type AdminSession struct {
	Hash       []byte
	AdminID    string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // absolute end, whatever the activity
	Remote     string
}

// AdminStore keeps console accounts and their sessions.
type AdminStore interface {
	// CreateAdmin stores a (ID set by the caller); a taken email gives ErrConflict.
	CreateAdmin(ctx context.Context, a *Admin) error
	Admin(ctx context.Context, id string) (*Admin, error)
	AdminByEmail(ctx context.Context, email string) (*Admin, error)
	AdminBySetupHash(ctx context.Context, hash []byte) (*Admin, error)
	Admins(ctx context.Context) ([]Admin, error)
	// UpdateAdmin is an atomic read-modify-write of one account.
	UpdateAdmin(ctx context.Context, id string, fn func(*Admin) error) (*Admin, error)
	CountAdmins(ctx context.Context) (int, error)

	CreateAdminSession(ctx context.Context, s *AdminSession) error
	AdminSession(ctx context.Context, hash []byte) (*AdminSession, error)
	TouchAdminSession(ctx context.Context, hash []byte, at time.Time) error
	DeleteAdminSession(ctx context.Context, hash []byte) error
	// DeleteAdminSessions ends every session of an account (disabled,
	// password or second factor reset).
	DeleteAdminSessions(ctx context.Context, adminID string) error
}

// Dashboard is the console's overview, computed by the store.
type Dashboard struct {
	// Enrolled counts enrolled devices by platform and OS version.
	Enrolled []VersionCount
	// PerDay counts enrollments completed per UTC day since the cut-off
	// (days with none are absent).
	PerDay          []DayCount
	Pending         int // commands queued, sent or NotNow
	PendingDevices  int // enrolled devices last seen before the idle cut-off
	FailedWebhooks  int
	RecentErrors    []CommandError
	EnrollmentsOpen int // profiles handed out, device not yet checked in
}

// VersionCount is a number of devices on one platform and OS version.
type VersionCount struct {
	Platform, OSVersion string
	Count               int
}

// DayCount is a number of events on one UTC day.
type DayCount struct {
	Day   time.Time
	Count int
}

// CommandError is a command a device answered with Error or CommandFormatError.
type CommandError struct {
	DeviceID, RequestType, CommandUUID, Status string
	At                                         time.Time
}

// StatsStore computes aggregates for the console.
type StatsStore interface {
	// Dashboard counts per-day enrollments since `since` and devices not
	// seen since `idleBefore`.
	Dashboard(ctx context.Context, since, idleBefore time.Time) (*Dashboard, error)
}
