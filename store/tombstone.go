package store

import (
	"context"
	"time"
)

// Ending says why and when rows are deleted whose devices must be told
// they are no longer managed (a deleted user, a tenant deleted with its
// users). Reason is free text for the log and audit ("user deleted by
// key:ab12"); At is stored in Unix microseconds.
type Ending struct {
	Reason string
	At     time.Time
}

// Tombstone is what stays of one identity certificate after its
// enrollment was deleted with its user or tenant: a later request signed
// with it is answered com.apple.unrecognized.device (Apple: "Check-in",
// the device then removes its enrollment profile) rather than a bare 403.
// The ids are plain text; the rows they named are gone.
type Tombstone struct {
	Serial            string // hex, of the identity certificate
	SHA256            []byte // of the DER certificate
	DeviceID          string
	AppleEnrollmentID string // "" when the device never checked in
	TenantID          string
	UserID            string
	Reason            string
	EndedAt           time.Time
}

// TombstoneStore keeps tombstones. DeleteUser and DeleteTenant (cascade)
// write them, one per identity certificate of every enrollment they
// delete, in the same transaction as the deletion.
type TombstoneStore interface {
	// Tombstone returns the tombstone of the certificate with this serial
	// (hex); ErrNotFound when there is none.
	Tombstone(ctx context.Context, serial string) (*Tombstone, error)
	// PurgeTombstones deletes tombstones ended before before and returns
	// how many.
	PurgeTombstones(ctx context.Context, before time.Time) (int64, error)
}
