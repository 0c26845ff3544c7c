package store

import (
	"context"
	"time"
)

// ProfileChange is an edit of a profile's settings (nil: unchanged).
type ProfileChange struct {
	Name      *string
	Platforms *[]string // iOS, macOS
	MinOS     *string   // "" for none
	Sign      *bool
}

// ProfileAdminStore deletes and edits library profiles (docs/profiles.md,
// "Deleting and editing a profile").
type ProfileAdminStore interface {
	// DeleteProfile deletes a profile in one transaction: its assignments
	// go, every device that has an item of it is marked for the
	// reconciler (which sends RemoveProfile for what Pomona installed and
	// forgets the items), and the profile becomes a tombstone — hidden from
	// the library, its identifier still taken — until no item is left
	// (PurgeDeletedProfiles). ErrNotFound: no such (live) profile.
	DeleteProfile(ctx context.Context, id string, now time.Time) error
	// ProfileOnDevices counts the devices the profile is on or on its way
	// to (items installed, installing, removing, or failed after the
	// device acknowledged): those a deletion sends RemoveProfile.
	ProfileOnDevices(ctx context.Context, id string) (int, error)
	// PurgeDeletedProfiles removes the tombstones of the tenant whose
	// items are all gone, and returns how many devices still have an item
	// of a tombstone with identifier (0 when identifier is free).
	PurgeDeletedProfiles(ctx context.Context, tenantID, identifier string) (int, error)
	// UpdateProfile changes a live profile's settings and, in the same
	// transaction, marks the devices it may concern (those of its groups
	// and those with an item) when platforms, minimum OS or signing
	// change; a signing change also clears the items' content hash, so
	// every device gets the profile again, signed or not.
	UpdateProfile(ctx context.Context, id string, ch ProfileChange, now time.Time) (*ConfigProfile, error)
}

// ProfileDeliveryStore is an admin's retry of a failed profile delivery.
// (A device's acknowledgement of an install, which also revokes the user
// certificates of earlier deliveries as superseded, is
// ProfileResultStore.AcknowledgeProfileItem.)
type ProfileDeliveryStore interface {
	// RetryProfileItem makes a failed item pending again with no attempts
	// and no retry time and queues its enrollment, in one transaction.
	// ErrNotFound: the profile is deleted (or never existed), or the
	// device has no item of it; ErrConflict: the item is not failed. A
	// retry racing a deletion therefore never resurrects the item.
	RetryProfileItem(ctx context.Context, enrollmentID, profileID string, now time.Time) error
}

// Kinds of certificate in the revocation list.
const (
	CertUser     = "user"     // issued through a profile's SCEP payload
	CertIdentity = "identity" // an MDM identity
)

// Certificate statuses (RFC 6960 §2.2).
const (
	CertGood    = "good"
	CertRevoked = "revoked"
	CertUnknown = "unknown"
)

// RevokedCert is one revoked certificate of Pomona's CA.
type RevokedCert struct {
	Serial    string // hex, as pki.SerialHex
	Kind      string // CertUser, CertIdentity
	NotAfter  time.Time
	RevokedAt time.Time
	Reason    int // RFC 5280 §5.3.1 CRLReason
}

// CRLState is the CA's current CRL, shared by every instance.
type CRLState struct {
	Number     int64 // RFC 5280 §5.2.3 CRL number
	Revoked    int64 // RevokedCount it reflects
	ThisUpdate time.Time
	NextUpdate time.Time
	DER        []byte
}

// RevocationStore is the revocation status of the certificates Pomona's
// CA issued. Revocations are recorded by the store itself whenever a
// certificate is revoked or deleted (with its enrollment, user or tenant)
// and when an enrollment ends, in the same transaction; rows are never
// deleted.
type RevocationStore interface {
	// RevokedCount counts the revocations ever recorded (it only grows:
	// a CRL made at a count is current while the count is unchanged).
	RevokedCount(ctx context.Context) (int64, error)
	// RevokedCerts lists the revoked certificates that expire after
	// notAfter, by serial.
	RevokedCerts(ctx context.Context, notAfter time.Time) ([]RevokedCert, error)
	// CertStatus is a serial's status: CertRevoked (with its record),
	// CertGood (Pomona issued it: an identity or user certificate on
	// record), CertUnknown.
	CertStatus(ctx context.Context, serial string) (string, *RevokedCert, error)
	// CRL returns the stored CRL (ErrNotFound: none yet).
	CRL(ctx context.Context) (*CRLState, error)
	// PutCRL stores c if the stored CRL's number is still prev (0: none);
	// ErrConflict when another instance stored one first.
	PutCRL(ctx context.Context, c *CRLState, prev int64) error
}
