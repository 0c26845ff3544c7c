// Package renewal renews device identity certificates before they expire,
// the way Apple specifies for MDM identities: Apple devices never renew
// them by themselves, so the server re-sends the enrollment profile with
// InstallProfile — identical immutable MDM-payload keys, a fresh one-time
// SCEP challenge bound to the existing enrollment — and the device
// requests its new certificate with that challenge and continues with it
// under the same enrollment (EnrollmentID, channels, token binding, queue
// and history stay). See docs/lifecycle.md.
//
// Job.Run is one pass: it declares renewals failed whose device never came
// for its certificate, and queues the renewals that are due. The server
// runs it periodically under a cluster-wide lease; tests call it directly
// with a moved clock.
package renewal

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/micromdm/plist"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/store"
)

// Defaults of Job's settings.
const (
	// DefaultWindow: renewals are queued within the last 60 days of a
	// certificate's validity.
	DefaultWindow = 60 * 24 * time.Hour
	// DefaultTimeout: a device that has not requested its renewed
	// certificate 7 days after the InstallProfile was queued counts as a
	// failed renewal; a failed renewal is tried again after as long.
	DefaultTimeout = 7 * 24 * time.Hour
	// DefaultBatch bounds the renewals queued by one pass (the rest wait
	// for the next one): a backlog is spread rather than pushed at once.
	DefaultBatch = 1000
)

// Store is what the job needs from storage.
type Store interface {
	store.RenewalStore
	store.EnrollmentStore
}

// Event names a renewal transition (for metrics and webhooks).
const (
	Queued = "queued" // InstallProfile queued
	Failed = "failed" // device answered Error, or never came for its certificate
)

// Job queues and watches identity renewals.
type Job struct {
	Store    Store
	Enroll   *enroll.Service
	Commands *app.Commands
	// Topic is the current push topic (the re-sent profile's Topic).
	Topic func(ctx context.Context) (string, error)
	// Window, Timeout, Batch: zero means the default.
	Window  time.Duration
	Timeout time.Duration
	Batch   int
	Now     func() time.Time
	Log     *slog.Logger
	// Metrics, when set, counts transitions and issued identities
	// (pomona_renewals_total by event).
	Metrics *metrics.Metrics
	// Notify, when set, hears every transition (event Queued or Failed;
	// reason says why a renewal failed).
	Notify func(ctx context.Context, event string, r *store.Renewal, reason string)
}

func (j *Job) window() time.Duration  { return or(j.Window, DefaultWindow) }
func (j *Job) timeout() time.Duration { return or(j.Timeout, DefaultTimeout) }
func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Due is when the renewal of a certificate of enrollmentID that expires at
// notAfter is queued: in the first half of the window before notAfter, at
// an offset fixed per enrollment (FNV-1a of its ID), so a fleet enrolled in
// one week renews spread over weeks, not in one hour, and every instance
// computes the same time. The second half of the window is left for
// devices that are offline, answer NotNow, or need a second attempt.
func Due(enrollmentID string, notAfter time.Time, window time.Duration) time.Time {
	spread := window / 2
	if spread <= 0 {
		return notAfter.Add(-window)
	}
	h := fnv.New64a()
	h.Write([]byte(enrollmentID))
	return notAfter.Add(-window + time.Duration(h.Sum64()%uint64(spread)))
}

// Report says what one pass did.
type Report struct {
	Queued int // renewals queued (InstallProfile sent)
	Failed int // renewals declared failed (timeout, or could not queue)
}

// Run is one pass of the job at j.Now().
func (j *Job) Run(ctx context.Context) (Report, error) {
	var rep Report
	now := j.Now().UTC()
	batch := j.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	stale, err := j.Store.StaleRenewals(ctx, now.Add(-j.timeout()), batch)
	if err != nil {
		return rep, err
	}
	for i := range stale {
		reason := fmt.Sprintf("the device did not request its renewed identity within %s of the InstallProfile", j.timeout())
		if j.fail(ctx, &stale[i], reason, now) {
			rep.Failed++
		}
	}
	topic, err := j.Topic(ctx)
	if err != nil {
		return rep, fmt.Errorf("renewal: no push topic: %w", err)
	}
	// Certificates inside the window that are still valid, in pages by
	// expiry: the cost follows the certificates in the window.
	after, afterSerial := now, ""
	for rep.Queued < batch {
		cands, err := j.Store.RenewalCandidates(ctx, after, afterSerial, now.Add(j.window()), 500)
		if err != nil {
			return rep, err
		}
		for _, c := range cands {
			if rep.Queued >= batch {
				break
			}
			if now.Before(Due(c.DeviceID, c.NotAfter, j.window())) {
				continue
			}
			if r := c.Renewal; r != nil && (r.Status != store.RenewalFailed || now.Sub(r.UpdatedAt) < j.timeout()) {
				continue // queued, or failed recently
			}
			switch err := j.start(ctx, c, topic); {
			case err == nil:
				rep.Queued++
			case ctx.Err() != nil:
				return rep, ctx.Err()
			case errors.Is(err, store.ErrConflict):
				// Another pass queued it just now.
			default:
				rep.Failed++
			}
		}
		if len(cands) < 500 {
			break
		}
		after, afterSerial = cands[len(cands)-1].NotAfter, cands[len(cands)-1].Serial
	}
	return rep, nil
}

// start queues the renewal of one certificate.
func (j *Job) start(ctx context.Context, c store.RenewalCandidate, topic string) error {
	e, err := j.Store.Enrollment(ctx, c.DeviceID)
	if err != nil {
		return err
	}
	payload, r, err := j.Enroll.RenewalProfile(ctx, e, c.Serial, topic, j.timeout())
	if err != nil {
		if !errors.Is(err, store.ErrConflict) {
			j.Log.Error("renewal: cannot build the re-sent profile", "device", e.ID, "serial", c.Serial, "err", err)
		}
		return err
	}
	cmd, err := plist.Marshal(map[string]any{"RequestType": "InstallProfile", "Payload": payload})
	if err != nil {
		return err
	}
	uuid, err := j.Commands.Enqueue(ctx, e, app.EnqueueRequest{Plist: cmd, CreatedBy: "renewal"})
	if err != nil {
		j.fail(ctx, r, "cannot queue the InstallProfile: "+err.Error(), j.Now().UTC())
		return err
	}
	r.CommandUUID = uuid
	if err := j.Store.SetRenewalCommand(ctx, c.Serial, uuid, j.Now().UTC()); err != nil {
		return err
	}
	j.Log.Info("renewal: re-sent enrollment profile queued", "device", e.ID, "enrollment_id", e.AppleEnrollmentID, "serial", c.Serial,
		"not_after", c.NotAfter, "command_uuid", uuid, "attempt", r.Attempts)
	j.notify(ctx, Queued, r, "")
	return nil
}

func (j *Job) fail(ctx context.Context, r *store.Renewal, reason string, now time.Time) bool {
	ok, err := j.Store.FailRenewal(ctx, r.Serial, reason, now)
	if err != nil || !ok {
		return false
	}
	r.Status, r.Error = store.RenewalFailed, reason
	j.Log.Warn("renewal failed: the device keeps its current identity until it expires; the job tries again after the timeout, "+
		"or ask the user to open Settings so the device fetches its commands", "device", r.DeviceID, "serial", r.Serial, "reason", reason,
		"attempt", r.Attempts, "retry_after", j.timeout())
	j.notify(ctx, Failed, r, reason)
	return true
}

func (j *Job) notify(ctx context.Context, event string, r *store.Renewal, reason string) {
	if j.Metrics != nil {
		j.Metrics.Renewals.WithLabelValues(event).Inc()
	}
	if j.Notify != nil {
		j.Notify(ctx, event, r, reason)
	}
}

// Result takes the device's answer to a command: when it is the
// InstallProfile of a renewal and the device refused it (Error,
// CommandFormatError), the renewal failed — a real device answers 12012
// when an immutable key changed. Other commands are ignored.
func (j *Job) Result(ctx context.Context, commandUUID, status string, raw []byte) {
	if status != mdm.Error && status != mdm.CommandFormatError {
		return
	}
	r, err := j.Store.RenewalByCommand(ctx, commandUUID)
	if err != nil {
		return
	}
	reason := "the device refused the re-sent enrollment profile (" + status + ")"
	if res, err := mdm.DecodeResult(raw); err == nil {
		for _, e := range res.ErrorChain {
			reason += fmt.Sprintf("; %s %d: %s", e.ErrorDomain, e.ErrorCode, e.LocalizedDescription)
		}
	}
	j.fail(ctx, r, reason, j.Now().UTC())
}
