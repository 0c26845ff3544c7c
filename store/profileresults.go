package store

import (
	"context"
	"time"
)

// ProfileResultStore records what devices answer to Pomona's profile
// commands (InstallProfile, ProfileList) in one transaction per answer,
// so that a profile wave costs one store write per result instead of a
// read, a write and a reconciler pass (docs/benchmarks.md, "Session 6:
// the profile wave").
type ProfileResultStore interface {
	// AcknowledgeProfileItem takes a device's Acknowledged to the
	// InstallProfile commandUUID: in one transaction the enrollment's item
	// whose current command that is gets Acknowledged set and its Error
	// cleared (its State stays: the device's ProfileList confirms it), and,
	// when verify is not nil and the item was not acknowledged before,
	// verify (a ProfileList command) is stored and queued for channelID —
	// unless a ProfileList is already waiting in that channel's queue
	// (queued, sent or NotNow), which then verifies this item too. It
	// returns the item as stored and whether verify was queued.
	// ErrNotFound: no item of the enrollment has that command (not
	// Pomona's profile, or superseded by a later plan); nothing is written.
	// In the same transaction the user certificates issued through that
	// profile to that enrollment by any other command are revoked (reason
	// superseded): the install replaced the profile, and its SCEP
	// payload's identity, on the device — which obtained the new
	// certificate before acknowledging. Not earlier, so a device that never
	// installs the new version keeps a valid certificate.
	// A repeated acknowledgement writes nothing and queues nothing.
	AcknowledgeProfileItem(ctx context.Context, enrollmentID, commandUUID, channelID string, verify *CommandRecord, now time.Time) (*ProfileItem, bool, error)
	// VerifyProfileItems applies a device's ProfileList answer: in one
	// transaction it reads the enrollment's items (by identifier), hands
	// them to verify and stores what verify returns — items to put (as
	// PutProfileItem) and profile ids whose items go (as
	// DeleteProfileItem: the user certificates issued through them to the
	// enrollment are revoked). verify must be pure (it may run again when
	// the transaction is retried). It returns the items put.
	VerifyProfileItems(ctx context.Context, enrollmentID string, verify func(items []ProfileItem) (put []ProfileItem, del []string)) ([]ProfileItem, error)
}
