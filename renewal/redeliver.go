package renewal

import (
	"context"
	"errors"
	"fmt"

	"github.com/pomona-mdm/pomona/store"
)

// Redeliver re-sends the enrollment profile to each candidate now, through
// the same path as a renewal (InstallProfile of the profile rebuilt with
// the recorded immutable keys and a fresh renewal challenge; the device
// continues with a new identity under the same enrollment), so that a
// change Apple allows on an installed profile reaches enrolled devices:
// com.apple.mdm.token added to ServerCapabilities once the tenant has an
// Apple Business Manager server token. A candidate whose renewal is
// queued is skipped (it is on its way); reason is logged.
func (j *Job) Redeliver(ctx context.Context, cands []store.RenewalCandidate, reason string) (Report, error) {
	var rep Report
	if len(cands) == 0 {
		return rep, nil
	}
	topic, err := j.Topic(ctx)
	if err != nil {
		return rep, fmt.Errorf("re-delivery: no push topic: %w", err)
	}
	for _, c := range cands {
		if c.Renewal != nil && c.Renewal.Status == store.RenewalQueued {
			continue
		}
		switch err := j.start(ctx, c, topic); {
		case err == nil:
			rep.Queued++
			j.Log.Info("profile re-delivery queued", "device", c.EnrollmentID, "serial", c.Serial, "reason", reason)
		case ctx.Err() != nil:
			return rep, ctx.Err()
		case errors.Is(err, store.ErrConflict):
		default:
			rep.Failed++
		}
	}
	return rep, nil
}
