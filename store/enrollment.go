package store

import (
	"context"
	"errors"
	"time"
)

// ErrSCEPChallengeUsed: the one-time SCEP challenge was already consumed.
var ErrSCEPChallengeUsed = errors.New("challenge already used")

// ErrExpired: a one-time value (SCEP challenge) is past its lifetime.
var ErrExpired = errors.New("expired")

// AccessToken is a bearer token handed to a device through the sign-in
// callback. Hash is the SHA-256 of the token; the token itself is never
// stored.
type AccessToken struct {
	Hash      []byte
	UserID    string
	TenantID  string
	CreatedAt time.Time
	ExpiresAt time.Time
	// DeviceID is set when the token fetches an enrollment profile (or,
	// for a token from a later sign-in, when it is first used on the MDM
	// channel); from then on it is refused for any other enrollment.
	DeviceID string
	// RevokedAt is when the token's enrollment ended (zero: not revoked).
	RevokedAt time.Time
}

// Enrollment statuses.
const (
	EnrollmentPending    = "pending"    // profile handed out, device not yet checked in
	EnrollmentEnrolled   = "enrolled"   // device authenticated on the MDM channel
	EnrollmentUnenrolled = "unenrolled" // checked out or removed
)

// Enrollment is one device enrollment of one user, from the profile fetch on.
type Enrollment struct {
	ID       string
	TenantID string
	UserID   string
	// TokenHash is the hash of the sign-in's access token, an input of
	// CreateEnrollment (which binds that token to the enrollment); reads
	// leave it nil — the binding lives on the token (AccessToken.EnrollmentID).
	TokenHash    []byte
	Platform     string // iOS or macOS
	Product      string // e.g. iPhone15,3
	OSVersion    string
	BuildVersion string
	Language     string
	// MachineInfo is the signed plist's content as received (forbidden
	// hardware identifiers removed).
	MachineInfo []byte
	// DeviceSignature records what the advisory check of the device's CMS
	// signature found.
	DeviceSignature string
	// ProfileID is the PayloadIdentifier of the enrollment profile
	// (RemoveProfile with it unenrolls the device).
	ProfileID string
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
	// Set once the device authenticates on the MDM channel.
	AppleEnrollmentID string
	DeviceName        string
	Model             string
	ModelName         string
	EnrolledAt        time.Time
	UnenrolledAt      time.Time
	LastSeenAt        time.Time
	// Inventory is JSON: what the device's answers revealed, by section.
	Inventory []byte
	// PredecessorID is the id of the enrollment this one likely replaces
	// (the same user's device re-enrolled: docs/lifecycle.md); "" when
	// none was recognised. Set by LifecycleStore.SetPredecessor.
	PredecessorID string
}

// SCEPChallenge is a one-time SCEP challenge (stored hashed).
type SCEPChallenge struct {
	Hash      []byte
	DeviceID  string
	ExpiresAt time.Time
	UsedAt    time.Time
	// Kind is ChallengeEnrollment (the zero value means it too) or
	// ChallengeRenewal; Renews is then the serial of the certificate the
	// issued one replaces (recorded as its RenewedFrom).
	Kind   string
	Renews string
}

// IdentityCert records a device identity certificate Pomona issued.
type IdentityCert struct {
	Serial      string // hex
	DeviceID    string
	SHA256      []byte // of the DER certificate
	NotBefore   time.Time
	NotAfter    time.Time
	IssuedAt    time.Time
	RenewedFrom string // serial of the certificate this one renews
	// RevokedAt is when the certificate stopped being accepted (its
	// enrollment ended or was replaced); zero while it is valid.
	RevokedAt     time.Time
	RevokedReason string
}

// TokenStore keeps access tokens.
type TokenStore interface {
	CreateAccessToken(ctx context.Context, t *AccessToken) error
	AccessToken(ctx context.Context, hash []byte) (*AccessToken, error)
	// BindAccessToken binds the token to enrollmentID unless it is bound to
	// another one already, in which case it returns ErrConflict.
	BindAccessToken(ctx context.Context, hash []byte, enrollmentID string) error
}

// EnrollmentStore keeps enrollments, their SCEP challenges and identity
// certificates.
type EnrollmentStore interface {
	// CreateEnrollment stores a pending enrollment and its SCEP challenge
	// together (imports, seeding; profile requests use
	// CreatePendingEnrollment).
	CreateEnrollment(ctx context.Context, e *Enrollment, ch *SCEPChallenge) error
	// CreatePendingEnrollment is a profile request's write — one sign-in,
	// one enrollment. In one transaction it binds the access token
	// e.TokenHash to a new pending enrollment e with its SCEP challenge ch;
	// or, when that token already created an enrollment that is still
	// pending, it replaces that one instead: e.ID is set to its id, its
	// device fields are refreshed from e, its older SCEP challenges are
	// deleted (a profile fetched before no longer works) and certificates
	// already issued to it are revoked, and replaced is true. Concurrent
	// calls with one token leave exactly one pending enrollment with one
	// usable challenge. A token bound to an enrollment that is no longer
	// pending gives ErrConflict; an unknown token ErrNotFound.
	CreatePendingEnrollment(ctx context.Context, e *Enrollment, ch *SCEPChallenge, now time.Time) (replaced bool, err error)
	Enrollment(ctx context.Context, id string) (*Enrollment, error)
	SCEPChallenge(ctx context.Context, hash []byte) (*SCEPChallenge, error)
	// ConsumeSCEPChallenge marks the challenge used and records cert in one
	// transaction; for a renewal challenge it also marks the renewal of
	// cert.RenewedFrom done. A used challenge gives ErrSCEPChallengeUsed, an expired one
	// ErrExpired, an unknown one ErrNotFound; nothing is recorded then.
	ConsumeSCEPChallenge(ctx context.Context, hash []byte, now time.Time, cert *IdentityCert) error
	IdentityCert(ctx context.Context, serial string) (*IdentityCert, error)
	// Enrollments lists enrollments, newest first.
	Enrollments(ctx context.Context, f EnrollmentFilter) ([]Enrollment, error)
}

// EnrollmentFilter selects enrollments; zero fields match everything.
type EnrollmentFilter struct {
	TenantID, UserID, Status, Platform string
	// PredecessorID selects the enrollment that names this one as its
	// predecessor (its successor).
	PredecessorID string
	// SeenBefore, when not zero, selects enrollments last seen before it
	// (with Status enrolled: the silent devices; an index on (status,
	// last_seen_at) serves it).
	SeenBefore time.Time
	// Before is the ID of the last enrollment of the previous page.
	Before string
	Limit  int // default 100
}

// RateLimitStore counts attempts in fixed windows, shared by every
// instance that uses the same database.
type RateLimitStore interface {
	// RateLimitHit adds one to key's counter (starting a new window when the
	// old one is over) and returns the count in the current window and
	// when that window started.
	RateLimitHit(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error)
	// RateLimitCount returns the count in the current window (0 when none).
	RateLimitCount(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error)
	RateLimitReset(ctx context.Context, key string) error
	// RateLimitUndo takes back one hit of the window that started at start
	// (as RateLimitHit returned it): a sign-in counts its attempt before
	// the check, so that concurrent attempts cannot all pass a count read
	// before any of them failed, and takes it back once the step
	// succeeded. Never below zero; nothing when the key's window is
	// another one (it ended and a new one began) or the key is gone.
	RateLimitUndo(ctx context.Context, key string, start time.Time) error
	// RateLimitPrune deletes at most max counters whose window started
	// before before (their window is over: the caller passes now minus
	// the longest window in use) and returns how many it deleted. A
	// deleted counter reads as 0, as an ended window does, so pruning
	// never changes a limit's answer; without it every key ever counted
	// stays a row.
	RateLimitPrune(ctx context.Context, before time.Time, max int) (int, error)
}
