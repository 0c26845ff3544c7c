package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// DefaultReenrollWindow: an enrollment is linked to a predecessor whose
// device was last heard of at most this long before the new one enrolled.
const DefaultReenrollWindow = 30 * 24 * time.Hour

// candidates bounds the user's enrollments looked at for a predecessor
// (newest first): a user has a handful of devices, and a predecessor is
// recent by definition.
const candidates = 50

// LikelyPredecessor picks, among other enrollments of n's user, the one n
// most likely replaces (the same device erased, or its work account
// removed and added again): it finished enrolling before n did, on the
// same platform and model — Product, and Model and DeviceName where both
// know them — and its last sign of life (last seen, or ended) lies within
// window before n enrolled, never after (a device still heard of after n
// enrolled is another device). Enrollments in taken are some other
// enrollment's predecessor already. Of several, the one heard of last
// wins. nil when none fits or n has not enrolled.
func LikelyPredecessor(n *store.Enrollment, others []store.Enrollment, taken map[string]bool, window time.Duration) *store.Enrollment {
	if n.EnrolledAt.IsZero() {
		return nil
	}
	var best *store.Enrollment
	var bestLast time.Time
	for i := range others {
		c := &others[i]
		if c.ID == n.ID || c.UserID != n.UserID || c.Platform != n.Platform || taken[c.ID] || c.PredecessorID == n.ID ||
			c.AppleEnrollmentID == "" || c.EnrolledAt.IsZero() || !c.EnrolledAt.Before(n.EnrolledAt) ||
			!same(c.Product, n.Product) || !same(c.Model, n.Model) || !same(c.DeviceName, n.DeviceName) {
			continue
		}
		last := lastSign(c)
		if last.After(n.EnrolledAt) || n.EnrolledAt.Sub(last) > window {
			continue
		}
		if best == nil || last.After(bestLast) {
			best, bestLast = c, last
		}
	}
	return best
}

// same: equal, or unknown on one side (iOS does not report a device name
// or model at Authenticate; they come later, if at all).
func same(a, b string) bool { return a == "" || b == "" || a == b }

// lastSign is the last time an enrollment's device was heard of.
func lastSign(e *store.Enrollment) time.Time {
	if e.UnenrolledAt.After(e.LastSeenAt) {
		return e.UnenrolledAt
	}
	return e.LastSeenAt
}

// Reenrollment links newly enrolled devices to their likely predecessor.
type Reenrollment struct {
	Store interface {
		Enrollment(ctx context.Context, id string) (*store.Enrollment, error)
		Enrollments(ctx context.Context, f store.EnrollmentFilter) ([]store.Enrollment, error)
		store.LifecycleStore
	}
	// Window: zero means DefaultReenrollWindow.
	Window time.Duration
	Events Publisher
	Log    *slog.Logger
}

// Enrolled is called once a device authenticated (its enrollment is
// enrolled): it records the likely predecessor, if any, sends the webhook
// event device.reenrolled and returns the predecessor (nil: none). One
// read of the enrollment and one of the user's latest enrollments; a
// write only when a predecessor is found.
func (r *Reenrollment) Enrolled(ctx context.Context, id string) (*store.Enrollment, error) {
	n, err := r.Store.Enrollment(ctx, id)
	if err != nil {
		return nil, err
	}
	if n.PredecessorID != "" {
		return nil, nil // Authenticate repeated: linked already
	}
	others, err := r.Store.Enrollments(ctx, store.EnrollmentFilter{UserID: n.UserID, Platform: n.Platform, Limit: candidates})
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, o := range others {
		if o.PredecessorID != "" {
			taken[o.PredecessorID] = true
		}
	}
	window := r.Window
	if window <= 0 {
		window = DefaultReenrollWindow
	}
	p := LikelyPredecessor(n, others, taken, window)
	if p == nil {
		return nil, nil
	}
	if err := r.Store.SetPredecessor(ctx, n.ID, p.ID); errors.Is(err, store.ErrConflict) {
		return nil, nil // claimed meanwhile by a concurrent enrollment
	} else if err != nil {
		return nil, err
	}
	r.Log.Info("re-enrollment recognised: likely predecessor recorded", "device", n.ID, "enrollment_id", n.AppleEnrollmentID,
		"predecessor", p.ID, "predecessor_status", p.Status, "predecessor_last_seen", lastSign(p), "user", n.UserID)
	publish(ctx, r.Events, "device.reenrolled", map[string]any{"device": n.ID, "enrollment_id": n.AppleEnrollmentID, "tenant_id": n.TenantID,
		"user_id": n.UserID, "platform": n.Platform, "predecessor": p.ID, "predecessor_enrollment_id": p.AppleEnrollmentID,
		"predecessor_status": p.Status})
	return p, nil
}

// Links returns e's likely predecessor and successor (nil when none). A
// recorded link is dropped when later activity contradicts it — the
// predecessor's device was heard of after its successor enrolled, so the
// two are different devices — and the record stays as it was.
func Links(ctx context.Context, st interface {
	Enrollment(ctx context.Context, id string) (*store.Enrollment, error)
	Enrollments(ctx context.Context, f store.EnrollmentFilter) ([]store.Enrollment, error)
}, e *store.Enrollment) (pred, succ *store.Enrollment, err error) {
	if e.PredecessorID != "" {
		p, err := st.Enrollment(ctx, e.PredecessorID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, nil, err
		}
		if p != nil && !lastSign(p).After(e.EnrolledAt) {
			pred = p
		}
	}
	ss, err := st.Enrollments(ctx, store.EnrollmentFilter{PredecessorID: e.ID, Limit: 1})
	if err != nil {
		return nil, nil, err
	}
	if len(ss) == 1 && !lastSign(e).After(ss[0].EnrolledAt) {
		succ = &ss[0]
	}
	return pred, succ, nil
}
