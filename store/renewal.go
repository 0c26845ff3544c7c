package store

import (
	"context"
	"time"
)

// SCEP challenge kinds.
const (
	ChallengeEnrollment = "enrollment" // handed out with the profile fetch
	ChallengeRenewal    = "renewal"    // in a re-sent profile, renews an identity
)

// Renewal statuses.
const (
	RenewalQueued = "queued" // InstallProfile queued, SCEP not done yet
	RenewalDone   = "done"   // the successor certificate was issued
	RenewalFailed = "failed" // the device answered Error, or never came for its certificate
)

// Renewal is the renewal of one identity certificate (Serial) of an
// enrollment: the re-sent enrollment profile (CommandUUID) with a
// one-time SCEP challenge bound to the enrollment.
type Renewal struct {
	Serial       string // the certificate being renewed
	EnrollmentID string
	CommandUUID  string // the InstallProfile ("" until queued)
	Status       string
	Attempts     int
	Error        string // why it failed
	NewSerial    string // the successor, once issued
	QueuedAt     time.Time
	UpdatedAt    time.Time
}

// RenewalCandidate is an enrollment's newest identity certificate that
// expires soon, with the state of its renewal (Renewal nil: none yet).
type RenewalCandidate struct {
	Serial       string
	EnrollmentID string
	NotAfter     time.Time
	Renewal      *Renewal
}

// ProfileKeys are the immutable MDM-payload keys of the enrollment
// profile an enrollment was handed (Apple: com.apple.mdm; a re-sent
// profile must repeat them).
type ProfileKeys struct {
	ManagedAppleID string // AssignedManagedAppleID
	Topic          string
	ServerURL      string
	CheckInURL     string
	// GetToken: the profile advertises com.apple.mdm.token (the one
	// capability that may change on re-delivery; Apple Business Manager's
	// Managed Apple Account access needs it).
	GetToken bool
}

// RenewalStore keeps identity renewals and what they must repeat.
type RenewalStore interface {
	// PutProfileKeys records (or, for a profile handed out again,
	// replaces) the immutable keys of enrollmentID's profile.
	PutProfileKeys(ctx context.Context, enrollmentID string, k ProfileKeys, now time.Time) error
	// ProfileKeys returns them (ErrNotFound: enrolled before they were kept).
	ProfileKeys(ctx context.Context, enrollmentID string) (*ProfileKeys, error)
	// RenewalCandidates lists, by ascending NotAfter then serial, the
	// newest certificate of each enrolled (not ended) enrollment with
	// after < NotAfter < before — keyset-paged: pass the last row's
	// NotAfter and Serial as after/afterSerial. The query uses the index on
	// not_after: its cost follows the certificates in the window.
	RenewalCandidates(ctx context.Context, after time.Time, afterSerial string, before time.Time, limit int) ([]RenewalCandidate, error)
	// StartRenewal creates (or, for a failed one, restarts with Attempts+1)
	// the renewal of r.Serial and stores ch, a renewal challenge, in one
	// transaction. A renewal already queued or done gives ErrConflict.
	StartRenewal(ctx context.Context, r *Renewal, ch *SCEPChallenge) error
	// SetRenewalCommand records the InstallProfile that carries the renewal.
	SetRenewalCommand(ctx context.Context, serial, commandUUID string, now time.Time) error
	// RenewalByCommand finds the renewal an InstallProfile carries
	// (ErrNotFound: the command is not a renewal).
	RenewalByCommand(ctx context.Context, commandUUID string) (*Renewal, error)
	// LatestRenewal is the enrollment's most recent renewal (ErrNotFound: none).
	LatestRenewal(ctx context.Context, enrollmentID string) (*Renewal, error)
	// FailRenewal marks a queued renewal failed with reason; a renewal
	// that is no longer queued is left alone (reported false).
	FailRenewal(ctx context.Context, serial, reason string, now time.Time) (bool, error)
	// StaleRenewals lists queued renewals last updated before before
	// (at most limit), for the job to declare failed.
	StaleRenewals(ctx context.Context, before time.Time, limit int) ([]Renewal, error)
}
