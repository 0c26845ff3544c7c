package store

import (
	"context"
	"time"
)

// LeaseStore lets one instance of a cluster run a periodic job at a time.
type LeaseStore interface {
	// TryLease takes or renews the named lease for holder until now+ttl.
	// It reports false while another holder's lease is unexpired.
	TryLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error)
}
