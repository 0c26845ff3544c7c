package store

import "context"

// LifecycleStore keeps what the enrollment lifecycle adds to enrollments
// beyond enrollment and the MDM channel: the link from a re-enrolled
// device to its likely predecessor. Silent devices are found with
// EnrollmentFilter.SeenBefore.
type LifecycleStore interface {
	// SetPredecessor records predecessorID as the likely predecessor of
	// enrollment ref. Both must belong to the same user; ref must have no
	// predecessor yet and predecessorID must not be another enrollment's
	// predecessor already; otherwise ErrConflict and nothing changes. An
	// unknown ref gives ErrNotFound.
	SetPredecessor(ctx context.Context, ref, predecessorID string) error
}
