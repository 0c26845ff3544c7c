// Package profiles is the reconciler of configuration profiles (issue 15):
// it makes every enrolled device's installed set equal its desired set —
// InstallProfile, RemoveProfile (only what Pomona installed), ProfileList
// verification, failures with Apple's error chain and bounded backoff —
// driven by the store's queue of changed enrollments, on every instance
// safely (row claims). The use cases (groups, library, assignments,
// status) are app.Profiles; the rules are the pure package reconcile.
// See docs/profiles.md.
package profiles

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/mdm/mobileconfig"
	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/profile"
	"github.com/pomona-mdm/pomona/reconcile"
	"github.com/pomona-mdm/pomona/store"
)

// Defaults of Job's settings.
const (
	// DefaultVerifyEvery: every enrolled device with profiles gets a
	// ProfileList this often, to find drift.
	DefaultVerifyEvery = 24 * time.Hour
	// DefaultBatch: enrollments claimed per pass — planned in memory and
	// written in one transaction (a few MB at most: a per-device
	// rendering is a queue row's ~30 bytes of vars, a SCEP profile's a
	// command row of ~2 KB).
	DefaultBatch = 1000
	// DefaultLease: how long a claim keeps other instances off an
	// enrollment (a pass over a batch takes far less).
	DefaultLease = 2 * time.Minute
	// DefaultWorkers: passes run in parallel on one instance when much is
	// due (each claims its own batch; the claims keep them apart).
	DefaultWorkers = 4
)

// Signer is Pomona's profile signer.
type Signer struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// Webhook events.
const (
	EventInstalled = "profile.installed"
	EventFailed    = "profile.failed"
)

// Store is what the job needs from storage.
type Store interface {
	store.GroupStore
	store.ProfileStore
	store.ProfileCertStore
	store.ProfileResultStore
	store.EnrollmentStore
	store.MDMStore
	Tenant(ctx context.Context, id string) (*store.Tenant, error)
	User(ctx context.Context, id string) (*store.User, error)
}

// Job is the reconciler. Every instance runs it: work is claimed per
// enrollment in the store (ClaimDirty), so two instances never plan — or
// deliver — for one device at the same time, and a pass costs what is due,
// not the fleet's size.
type Job struct {
	Store    Store
	Commands *app.Commands
	// Signer returns the profile signer (nil: profiles go unsigned).
	Signer func() *Signer
	// Holder names this instance in claims; each pass claims as
	// Holder/N (N counting this Job's passes), so that the workers of one
	// instance never take each other's claims for their own.
	Holder      string
	VerifyEvery time.Duration
	// Batch: enrollments per pass (0: the store's, see BatchSizer, or
	// DefaultBatch).
	Batch   int
	Workers int
	Lease   time.Duration
	Now     func() time.Time
	Log     *slog.Logger
	// SCEPURL is Pomona's SCEP service ($SCEP_URL in profiles).
	SCEPURL string
	// Notify, when set, hears items that reached installed or failed.
	Notify func(ctx context.Context, event string, enr *store.Enrollment, it *store.ProfileItem)

	wake   chan struct{}
	passes atomic.Uint64
	// verifiers make the ProfileList that verifies an acknowledged
	// install, one per platform (verifyCommand).
	verifiersMu sync.Mutex
	verifiers   map[string]func() (*store.CommandRecord, error)
}

// verifyCommand is a new ProfileList (ManagedOnly) for a device of
// platform, the command that verifies an acknowledged install: checked
// and encoded once per platform (app.Commands.Recorder), not per answer.
func (j *Job) verifyCommand(platform string) (*store.CommandRecord, error) {
	if platform != catalog.MacOS {
		platform = catalog.IOS // as Commands.Record checks it
	}
	j.verifiersMu.Lock()
	mk, ok := j.verifiers[platform]
	j.verifiersMu.Unlock()
	if !ok {
		var err error
		if mk, err = j.Commands.Recorder(platform, map[string]any{"RequestType": "ProfileList", "ManagedOnly": true}, "profiles"); err != nil {
			return nil, err // not remembered: asked again next time
		}
		j.verifiersMu.Lock()
		if j.verifiers == nil {
			j.verifiers = map[string]func() (*store.CommandRecord, error){}
		}
		j.verifiers[platform] = mk
		j.verifiersMu.Unlock()
	}
	return mk()
}

// passHolder is the claim holder of a new pass: unique per pass, so that
// a pass that outlived its lease, whose enrollments another pass (of
// this instance or another) claimed again, finds its claims lost
// (store.ErrClaimLost) instead of taking the other's for its own.
func (j *Job) passHolder() string {
	return j.Holder + "/" + strconv.FormatUint(j.passes.Add(1), 10)
}

func (j *Job) now() time.Time { return j.Now().UTC().Truncate(time.Microsecond) }

func (j *Job) verifyEvery() time.Duration {
	if j.VerifyEvery > 0 {
		return j.VerifyEvery
	}
	return DefaultVerifyEvery
}

// Wake makes Loop run a pass now (devices were marked).
func (j *Job) Wake() {
	select {
	case j.wakeCh() <- struct{}{}:
	default:
	}
}

func (j *Job) wakeCh() chan struct{} {
	if j.wake == nil {
		j.wake = make(chan struct{}, 1)
	}
	return j.wake
}

// Loop runs passes when woken and every interval until ctx ends. Call
// Wake only after Loop's channel exists (the server makes it first).
func (j *Job) Loop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	w := j.wakeCh()
	for {
		j.Drain(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w:
		}
	}
}

// Drain runs passes until nothing is due: one, and when its claim comes
// back full, Workers (DefaultWorkers when 0) in parallel, the first pass
// counted as one of them. The others start as soon as the first pass has
// claimed a full batch, not after it has planned and written it: on
// PostgreSQL the first batch's writes would otherwise run alone while
// the work behind them waits (one backend busy and the other cores idle;
// the claims keep the passes apart either way). Passes stop when one
// fails or claims less than a full batch. It returns when every pass has
// ended.
func (j *Job) Drain(ctx context.Context) {
	workers := j.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	full := j.batch()
	pass := func(claimed func(n int)) bool {
		rep, err := j.run(ctx, claimed)
		if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrClaimLost) { // Run logged a lost claim
			j.Log.Warn("profile reconciler: pass failed", "err", err)
		}
		return err == nil && rep.Claimed >= full
	}
	var wg sync.WaitGroup
	loop := func() {
		for pass(nil) {
		}
	}
	start := func(n int) {
		if n < full {
			return // the common case: little or nothing was due
		}
		for i := 1; i < workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				loop()
			}()
		}
	}
	if pass(start) {
		loop() // this goroutine is one of the workers
	}
	wg.Wait()
}

// batch is the enrollments of one pass: Batch when set, else the
// store's own (BatchSizer), else DefaultBatch.
func (j *Job) batch() int {
	if j.Batch > 0 {
		return j.Batch
	}
	if b, ok := j.Store.(BatchSizer); ok && b.ReconcileBatch() > 0 {
		return b.ReconcileBatch()
	}
	return DefaultBatch
}

// BatchSizer is a store that says how many enrollments one pass should
// claim and write in one transaction (sqlstore: its dialect's; SQLite's
// single writer does better with fewer, larger transactions).
type BatchSizer interface {
	ReconcileBatch() int
}

// Report says what one pass did.
type Report struct {
	Claimed, Installs, Removals, Failures, Verifies int
}

// Run is one pass over a claimed batch: claim it and read what planning
// needs in a few set-based queries (store.ClaimReconcile), plan every enrollment in
// memory (reconcile.Plan), then write the whole batch — commands, queue
// rows, SCEP challenges, items, the claims' end — in ONE transaction
// (store.ApplyReconcile), and push the batch's channels once. A device
// whose plan cannot be made (a signing error, a refused command) is left
// for a retry alone; the others go on. If the write fails nothing of the
// batch is stored and its claims expire after the lease.
func (j *Job) Run(ctx context.Context) (Report, error) { return j.run(ctx, nil) }

// run is Run; claimed, when set, hears how many enrollments the pass
// claimed as soon as the claim has returned (before planning and
// writing them): Drain starts its other workers there.
func (j *Job) run(ctx context.Context, claimed func(n int)) (Report, error) {
	var rep Report
	lease := j.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	// The claim and the inputs in one step (a store may read them in the
	// claim's transaction: sqlstore's Dialect.ClaimReadsInputs).
	holder := j.passHolder()
	ds, ins, err := j.Store.ClaimReconcile(ctx, holder, j.now(), lease, j.batch())
	if err != nil {
		return rep, err
	}
	rep.Claimed = len(ds)
	if claimed != nil {
		claimed(len(ds))
	}
	if len(ds) == 0 {
		return rep, nil
	}
	byID := make(map[string]*store.ReconcileInput, len(ins))
	for i := range ins {
		byID[ins[i].Enrollment.ID] = &ins[i]
	}
	bp := &batchPlan{job: j, now: j.now(), shared: map[sharedKey]*store.CommandRecord{}, render: reconcile.NewRenderer()}
	if j.Signer != nil {
		bp.signer = j.Signer()
	}
	bp.out.Holder = holder
	for _, d := range ds {
		next, verify := time.Time{}, false
		if in := byID[d.DeviceID]; in != nil {
			var err error
			if next, verify, err = bp.device(d, in, &rep); err != nil {
				j.Log.Warn("profile reconciler: enrollment left for a retry", "device", d.DeviceID, "err", err)
				next, verify = bp.now.Add(reconcile.BackoffBase), d.Verify
			}
		}
		bp.out.Finished = append(bp.out.Finished, store.FinishedClaim{Dirty: d, Next: next, Verify: verify})
	}
	if err := j.Store.ApplyReconcile(ctx, &bp.out); err != nil {
		if errors.Is(err, store.ErrClaimLost) {
			// Not a failure of the store: the pass took longer than its
			// lease and another pass owns these enrollments now, or one
			// of them was deleted meanwhile (its claim went with it).
			j.Log.Warn("profile reconciler: batch dropped, claims gone (the pass outlived its lease and another pass holds them, or an enrollment was deleted); they are planned again",
				"claimed", rep.Claimed, "lease", lease, "err", err)
		}
		return Report{Claimed: rep.Claimed}, err
	}
	if len(bp.push) > 0 && j.Commands.Push != nil {
		j.Commands.Push.Push(ctx, bp.push) // asynchronous: the pusher sends in the background
	}
	for _, f := range bp.failed {
		j.notify(ctx, EventFailed, f.enr, f.it)
	}
	if rep.Installs+rep.Removals+rep.Failures+rep.Verifies > 0 {
		j.Log.Info("profile reconciler: batch queued", "claimed", rep.Claimed, "installs", rep.Installs, "removals", rep.Removals,
			"failures", rep.Failures, "verifies", rep.Verifies, "commands", len(bp.out.Commands))
	}
	return rep, nil
}

// batchPlan collects one pass's writes.
type batchPlan struct {
	job    *Job
	now    time.Time
	signer *Signer
	out    store.ReconcileBatch
	// shared are the batch's commands stored once and queued for each
	// device's channel: ready ones whose content is the same for every
	// device (no per-device value: signed once), and templates of
	// profiles with per-user variables (rendered, and signed, per device
	// at delivery from the queue row's vars; no SCEP challenge).
	shared map[sharedKey]*store.CommandRecord
	push   []store.Channel
	failed []failedItem
	// render renders each distinct profile of the batch once and fills
	// in every device's values (the same bytes as mobileconfig.Render).
	render *reconcile.Renderer
}

// sharedKey identifies a shareable command: its platform (Apple's rules
// are checked per platform), kind, profile content hash (or identifier
// for a removal) and whether it is signed.
type sharedKey struct {
	platform, kind, key string
	signed              bool
}

type failedItem struct {
	enr *store.Enrollment
	it  *store.ProfileItem
}

// command returns the shared command for key, building it with build the
// first time in this batch.
func (bp *batchPlan) command(key sharedKey, build func() (*store.CommandRecord, error)) (*store.CommandRecord, bool, error) {
	if c, ok := bp.shared[key]; ok {
		return c, false, nil
	}
	c, err := build()
	if err != nil {
		return nil, false, err
	}
	bp.shared[key] = c
	return c, true, nil
}

// device plans one enrollment into the batch. It returns when the
// enrollment is due again (zero: only when something changes) and
// whether that is a verification. On an error nothing of this device is
// in the batch.
func (bp *batchPlan) device(d store.DirtyEnrollment, in *store.ReconcileInput, rep *Report) (time.Time, bool, error) {
	j, enr, now := bp.job, &in.Enrollment, bp.now
	if enr.Status != store.EnrollmentEnrolled {
		return time.Time{}, false, nil // ended: its profiles went with the enrollment profile
	}
	if in.Channel == nil {
		return time.Time{}, false, nil // its first TokenUpdate marks it again
	}
	sign := map[string]bool{}
	plists := map[string][]byte{}
	profiles := make([]reconcile.Profile, len(in.Candidates))
	for i, c := range in.Candidates {
		profiles[i] = reconcile.Profile{ProfileID: c.ProfileID, Identifier: c.Identifier, Version: c.Version, Platforms: c.Platforms,
			MinOS: c.MinOS, Plist: c.Plist, Included: c.Included, Excluded: c.Excluded}
		sign[c.ProfileID] = c.Sign
		plists[c.ProfileID] = c.Plist
	}
	stored := in.Items
	values := j.values(&in.User, &in.Tenant, enr)
	actions, wake := bp.render.Plan(reconcile.Device{Platform: enr.Platform, OSVersion: enr.OSVersion, Values: values},
		profiles, toItems(stored), now)

	// This device's writes, merged into the batch only when all of it
	// could be made.
	var (
		cmds    []store.CommandRecord
		newCmds []sharedKey
		queue   []store.BatchQueueEntry
		chals   []store.NewProfileChallenge
		puts    []store.ProfileItem
		dels    []store.DeletedItem
		failed  []failedItem
		r       Report
	)
	abort := func() {
		for _, k := range newCmds {
			delete(bp.shared, k)
		}
	}
	perDevice := func(cmd map[string]any) (string, error) {
		rec, err := j.Commands.Record(enr.Platform, cmd, "profiles")
		if err != nil {
			return "", err
		}
		cmds = append(cmds, *rec)
		queue = append(queue, store.BatchQueueEntry{ChannelID: in.Channel.ID, CommandUUID: rec.UUID})
		return rec.UUID, nil
	}
	// sharedRecord queues the batch's command key (built the first time)
	// with this device's vars ("" for a ready command).
	sharedRecord := func(key sharedKey, vars string, build func() (*store.CommandRecord, error)) (string, error) {
		rec, created, err := bp.command(key, build)
		if err != nil {
			return "", err
		}
		if created {
			newCmds = append(newCmds, key)
		}
		queue = append(queue, store.BatchQueueEntry{ChannelID: in.Channel.ID, CommandUUID: rec.UUID, Vars: vars})
		return rec.UUID, nil
	}
	shared := func(key sharedKey, build func() (map[string]any, error)) (string, error) {
		return sharedRecord(key, "", func() (*store.CommandRecord, error) {
			cmd, err := build()
			if err != nil {
				return nil, err
			}
			return j.Commands.Record(enr.Platform, cmd, "profiles")
		})
	}
	signed := func(profileID string, payload []byte) ([]byte, bool, error) {
		if !sign[profileID] || bp.signer == nil {
			return payload, false, nil
		}
		out, err := profile.Sign(payload, bp.signer.Cert, bp.signer.Key, bp.signer.Chain)
		return out, true, err
	}
	queued := false
	for _, a := range actions {
		it := store.ProfileItem{DeviceID: enr.ID, ProfileID: a.ProfileID, Identifier: a.Identifier, Version: a.Version, UpdatedAt: now}
		var uuid string
		var err error
		switch a.Kind {
		case reconcile.Install:
			if bytes.Contains(a.Payload, []byte(mobileconfig.ChallengePlaceholder)) {
				// A one-time SCEP challenge bound to this enrollment and
				// this profile: the command is this device's alone.
				tok, hash := opaquetoken.New()
				chals = append(chals, store.NewProfileChallenge{ProfileID: a.ProfileID,
					Challenge: store.SCEPChallenge{Hash: hash, DeviceID: enr.ID, ExpiresAt: now.Add(ProfileChallengeTTL), Kind: store.ChallengeProfile}})
				payload := bytes.ReplaceAll(a.Payload, []byte(mobileconfig.ChallengePlaceholder), []byte(tok))
				if payload, _, err = signed(a.ProfileID, payload); err == nil {
					uuid, err = perDevice(map[string]any{"RequestType": "InstallProfile", "Payload": payload})
				}
				chals[len(chals)-1].CommandUUID = uuid
			} else if names, tkey := bp.render.Vars(plists[a.ProfileID]); len(names) > 0 {
				// Per-user variables: one template command for the
				// batch's devices, rendered with each device's values
				// when it fetches it (Deliverer) — the same renderer and
				// values as a.Payload, so the bytes are the ones hashed.
				if vars, ok := reconcile.EncodeVars(names, values); ok {
					key := sharedKey{platform: platformOf(enr), kind: "template", key: a.ProfileID + "\x00" + tkey, signed: sign[a.ProfileID]}
					uuid, err = sharedRecord(key, vars, func() (*store.CommandRecord, error) {
						tmpl := plists[a.ProfileID]
						// Apple's rules checked on the template (the
						// values only fill strings of it).
						rec, err := j.Commands.Record(enr.Platform, map[string]any{"RequestType": "InstallProfile", "Payload": tmpl}, "profiles")
						if err != nil {
							return nil, err
						}
						rec.Payload, rec.Render = tmpl, store.RenderProfile
						if sign[a.ProfileID] {
							rec.Render = store.RenderProfileSigned
						}
						return rec, nil
					})
				} else {
					// A value the vars cannot carry exactly: rendered now.
					var payload []byte
					if payload, _, err = signed(a.ProfileID, a.Payload); err == nil {
						uuid, err = perDevice(map[string]any{"RequestType": "InstallProfile", "Payload": payload})
					}
				}
			} else {
				// No variable: identical content (same hash) on other
				// devices of the batch shares this command, signed once.
				key := sharedKey{platform: platformOf(enr), kind: "install", key: a.ProfileID + "\x00" + a.Hash, signed: sign[a.ProfileID] && bp.signer != nil}
				uuid, err = shared(key, func() (map[string]any, error) {
					payload, _, err := signed(a.ProfileID, a.Payload)
					return map[string]any{"RequestType": "InstallProfile", "Payload": payload}, err
				})
			}
			if err != nil {
				abort()
				return time.Time{}, false, err
			}
			it.State, it.Hash, it.CommandUUID, it.Attempts = reconcile.Installing, a.Hash, uuid, a.Attempts
			r.Installs++
			queued = true
			j.Log.Debug("profile: InstallProfile queued", "device", enr.ID, "profile", a.ProfileID, "identifier", a.Identifier,
				"version", a.Version, "command_uuid", uuid, "attempt", a.Attempts)
		case reconcile.Remove:
			uuid, err = shared(sharedKey{platform: platformOf(enr), kind: "remove", key: a.Identifier}, func() (map[string]any, error) {
				return map[string]any{"RequestType": "RemoveProfile", "Identifier": a.Identifier}, nil
			})
			if err != nil {
				abort()
				return time.Time{}, false, err
			}
			it.State, it.CommandUUID, it.Attempts = reconcile.Removing, uuid, a.Attempts
			r.Removals++
			queued = true
			j.Log.Debug("profile: RemoveProfile queued", "device", enr.ID, "profile", a.ProfileID, "identifier", a.Identifier, "command_uuid", uuid,
				"attempt", a.Attempts)
		case reconcile.Fail:
			it.State, it.Error = reconcile.Failed, a.Error
			r.Failures++
			j.Log.Warn("profile: cannot be made for this device", "device", enr.ID, "profile", a.ProfileID, "reason", a.Error)
		case reconcile.Drop:
			dels = append(dels, store.DeletedItem{DeviceID: enr.ID, ProfileID: a.ProfileID})
			continue
		}
		puts = append(puts, it)
		if a.Kind == reconcile.Fail {
			failed = append(failed, failedItem{enr, &puts[len(puts)-1]})
		}
	}
	if d.Verify && (len(stored) > 0 || queued) {
		if _, err := shared(sharedKey{platform: platformOf(enr), kind: "list"}, func() (map[string]any, error) {
			return map[string]any{"RequestType": "ProfileList", "ManagedOnly": true}, nil
		}); err != nil {
			abort()
			return time.Time{}, false, err
		}
		r.Verifies++
		queued = true
	}
	for _, k := range newCmds {
		cmds = append(cmds, *bp.shared[k])
	}
	bp.out.Commands = append(bp.out.Commands, cmds...)
	bp.out.Queue = append(bp.out.Queue, queue...)
	bp.out.Challenges = append(bp.out.Challenges, chals...)
	bp.out.PutItems = append(bp.out.PutItems, puts...)
	bp.out.DelItems = append(bp.out.DelItems, dels...)
	for _, f := range failed {
		it := *f.it // puts may have moved
		bp.failed = append(bp.failed, failedItem{enr, &it})
	}
	rep.Installs, rep.Removals, rep.Failures, rep.Verifies = rep.Installs+r.Installs, rep.Removals+r.Removals, rep.Failures+r.Failures, rep.Verifies+r.Verifies
	if queued {
		bp.push = append(bp.push, *in.Channel)
	}
	// Due again for a retry, or for the periodic verification when the
	// device has (or is getting) profiles of Pomona's.
	switch {
	case !wake.IsZero():
		return wake, false, nil
	case len(stored) > 0 || queued:
		return now.Add(j.verifyEvery()), true, nil
	}
	return time.Time{}, false, nil
}

// platformOf is the platform whose rules a command is checked against.
func platformOf(enr *store.Enrollment) string {
	if enr.Platform == catalog.MacOS {
		return catalog.MacOS
	}
	return catalog.IOS
}

// values are the variables of one device. The SCEP challenge stays a
// placeholder until the InstallProfile is built (challenge).
func (j *Job) values(u *store.User, t *store.Tenant, e *store.Enrollment) map[string]string {
	return map[string]string{
		mobileconfig.VarEmail: u.Email, mobileconfig.VarManagedAppleID: u.ManagedAppleID, mobileconfig.VarUserName: u.Name,
		mobileconfig.VarUserID: u.ID, mobileconfig.VarEnrollmentID: e.AppleEnrollmentID, mobileconfig.VarTenant: t.Name,
		mobileconfig.VarSCEPURL: j.SCEPURL, mobileconfig.VarSCEPChallenge: mobileconfig.ChallengePlaceholder,
	}
}

// ProfileChallengeTTL bounds the time between queueing a profile with a
// SCEP payload and the device's SCEP request (a device that was offline
// longer fails the install and the retry brings a new challenge).
const ProfileChallengeTTL = 7 * 24 * time.Hour

func toItems(its []store.ProfileItem) []reconcile.Item {
	out := make([]reconcile.Item, len(its))
	for i, it := range its {
		out[i] = reconcile.Item{ProfileID: it.ProfileID, Identifier: it.Identifier, State: it.State, Version: it.Version, Hash: it.Hash,
			CommandUUID: it.CommandUUID, Acknowledged: it.Acknowledged, Attempts: it.Attempts, Error: it.Error, NextRetry: it.NextRetry}
	}
	return out
}

func (j *Job) notify(ctx context.Context, event string, enr *store.Enrollment, it *store.ProfileItem) {
	if j.Notify != nil {
		j.Notify(ctx, event, enr, it)
	}
}

// Enrolled queues a device whose device channel just got its first
// TokenUpdate: it gets every profile of its groups without an admin acting.
func (j *Job) Enrolled(ctx context.Context, enr *store.Enrollment) {
	if err := j.Store.MarkDirty(ctx, []string{enr.ID}, j.now(), false); err != nil {
		j.Log.Warn("profile reconciler: cannot queue a new device", "device", enr.ID, "err", err)
		return
	}
	j.Wake()
}

// errorChain renders Apple's ErrorChain of a result.
func errorChain(status string, chain []mdm.ErrorChainItem) string {
	out := "the device answered " + status
	var parts []string
	for _, e := range chain {
		parts = append(parts, fmt.Sprintf("%s %d: %s", e.ErrorDomain, e.ErrorCode, e.LocalizedDescription))
	}
	if len(parts) > 0 {
		out += ": " + strings.Join(parts, "; ")
	}
	return out
}

// Result takes a device's answer to a command on channel channelID, in
// the device's request: after the result is durable and before the device
// is answered (mdmservice.Config.AfterResult). InstallProfile and
// RemoveProfile of Pomona's items move their state (Error: failed with
// Apple's error chain and a retry after the backoff); a ProfileList is
// compared with the items (installed when listed, drift when missing).
// An acknowledged InstallProfile queues the ProfileList that confirms it
// in the same transaction as the item's change (no reconciler pass, no
// push): it reports true then, and the device gets that ProfileList with
// this very answer. res is the decoded answer (its Doc is read, not the
// raw bytes decoded again). Results on a user channel are not Pomona's
// profile commands and are ignored.
// AckInResult is the MDM channel's mdmservice.ProfileAckHook: an
// Acknowledged InstallProfile or ProfileList on the device channel moves
// its profile items in the result's own transaction — the install with
// the ProfileList that verifies it (as Result does with
// AcknowledgeProfileItem), the list as Result does with
// VerifyProfileItems — and Result is then not called for it. One durable
// commit per answer instead of two.
//
// The device's own RequestType only saves the work for results that say
// they are something else: the store decides by the request type as
// queued, and a result that lies about it (or says nothing) is handled by
// Result after the commit, as before.
func (j *Job) AckInResult(ctx context.Context, enr *store.Enrollment, res *mdm.Result) (*store.ProfileAck, func(context.Context, *store.ProfileAck)) {
	switch res.RequestType {
	case "", "InstallProfile", "ProfileList":
	default:
		return nil, nil
	}
	ack := &store.ProfileAck{Verify: func() *store.CommandRecord {
		verify, err := j.verifyCommand(enr.Platform)
		if err != nil {
			j.Log.Warn("profile: cannot build the ProfileList that verifies an install", "device", enr.ID, "err", err)
			return nil // the periodic verification will confirm it
		}
		return verify
	}}
	var after func(context.Context, *store.ProfileAck)
	if res.RequestType != "InstallProfile" {
		// Maybe a ProfileList's answer: verify its items in the same
		// transaction when the command is one (a list without its array
		// is left to Result, which says so).
		if v := j.listVerifier(enr, res.Doc); v != nil {
			ack.List = v.verify
			after = func(ctx context.Context, ack *store.ProfileAck) { v.applied(ctx, ack.Put) }
		}
	}
	return ack, after
}

func (j *Job) Result(ctx context.Context, enr *store.Enrollment, channelID, requestType string, res *mdm.Result) bool {
	status, commandUUID := res.Status, res.CommandUUID
	if res.Kind() != mdm.DeviceChannel {
		// Pomona's profiles and their items live on the device channel;
		// a user channel's ProfileList lists the user's profiles, and
		// read as the device's it made every installed one drift.
		return false
	}
	switch requestType {
	case "InstallProfile", "RemoveProfile":
	case "ProfileList":
		if status == mdm.Acknowledged {
			j.profileList(ctx, enr, res.Doc)
		}
		return false
	default:
		return false
	}
	if status == mdm.NotNow {
		return false // the device will be asked again
	}
	now := j.now()
	if status == mdm.Acknowledged && requestType == "InstallProfile" {
		// Installed as far as the device says; its ProfileList confirms
		// it, asked for at once.
		verify, err := j.verifyCommand(enr.Platform)
		if err != nil {
			j.Log.Warn("profile: cannot build the ProfileList that verifies an install", "device", enr.ID, "err", err)
			verify = nil // the periodic verification will confirm it
		}
		_, queued, err := j.Store.AcknowledgeProfileItem(ctx, enr.ID, commandUUID, channelID, verify, now)
		if err != nil && !errors.Is(err, store.ErrNotFound) { // ErrNotFound: not Pomona's profile command (or superseded)
			j.Log.Warn("profile: cannot record an acknowledgement", "device", enr.ID, "err", err)
		}
		return queued
	}
	it, err := j.Store.ProfileItemForCommand(ctx, enr.ID, commandUUID)
	if err != nil {
		return false // not Pomona's profile command (or superseded)
	}
	it.UpdatedAt = now
	// The writes below are conditional on the item still carrying this
	// command: a reconciler pass may have replaced it between the read
	// above and the write (a new version, a new CommandUUID), and an
	// answer to the old command must not overwrite or delete the new one.
	if status == mdm.Acknowledged { // RemoveProfile
		if err := j.Store.DeleteProfileItemForCommand(ctx, enr.ID, it.ProfileID, commandUUID); errors.Is(err, store.ErrNotFound) {
			return false // superseded meanwhile
		} else if err != nil {
			j.Log.Warn("profile: cannot record a removal", "device", enr.ID, "err", err)
			return false
		}
		j.Log.Info("profile: removed", "device", enr.ID, "profile", it.ProfileID, "identifier", it.Identifier)
		return false
	}
	// Error or CommandFormatError.
	if it.State == reconcile.Failed {
		// This command's failure is recorded already: the device sent
		// its answer again (the acknowledgement of the first was lost).
		// Recorded again it would move the retry later and announce the
		// failure twice.
		return false
	}
	it.Error = errorChain(status, res.ErrorChain)
	if requestType == "RemoveProfile" {
		// The profile may be gone already: ProfileList settles it (gone:
		// the item goes; still listed: the removal failed, with this
		// error chain, retried after the backoff — listVerification).
		it.Acknowledged = true
		if err := j.Store.PutProfileItemForCommand(ctx, it, commandUUID); err == nil {
			j.verifySoon(ctx, enr)
		}
		return false
	}
	j.failInstall(ctx, enr, it, commandUUID, now, "profile: the device refused the profile")
	return false
}

// Undeliverable is the MDM channel's mdmservice.UndeliverableHook: a
// template InstallProfile that can never be rendered for this device
// (cause wraps store.ErrCannotRender: a value its queue row lacks, a
// stored profile that no longer parses) fails that device's item as a
// refused install does — the reason, a retry after the backoff, at most
// reconcile.MaxAttempts attempts — and nothing else: the other devices
// of the shared command, and the commands behind it, go on.
func (j *Job) Undeliverable(ctx context.Context, enr *store.Enrollment, q *store.QueuedCommand, cause error) {
	it, err := j.Store.ProfileItemForCommand(ctx, enr.ID, q.UUID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			j.Log.Warn("profile: cannot read the item of an undeliverable install", "device", enr.ID, "command_uuid", q.UUID, "err", err)
		}
		return // not Pomona's profile command (or superseded)
	}
	now := j.now()
	it.UpdatedAt, it.Error = now, "not delivered: "+cause.Error()
	j.failInstall(ctx, enr, it, q.UUID, now, "profile: cannot be delivered to this device")
}

// failInstall records item it, still carrying commandUUID, as a failed
// install with its Error set: a retry after the backoff while attempts
// remain (the enrollment marked due then), the profile.failed event.
func (j *Job) failInstall(ctx context.Context, enr *store.Enrollment, it *store.ProfileItem, commandUUID string, now time.Time, msg string) {
	it.State = reconcile.Failed
	if it.Attempts < reconcile.MaxAttempts {
		it.NextRetry = now.Add(reconcile.Backoff(it.Attempts))
	}
	// Conditional on the item not being failed already: copies of one
	// answer handled at once all pass Result's repeat check on their
	// reads; only one of them records (and announces) the failure.
	if err := j.Store.FailProfileItemForCommand(ctx, it, commandUUID); errors.Is(err, store.ErrNotFound) {
		return // superseded meanwhile, or this failure is recorded already
	} else if err != nil {
		j.Log.Warn("profile: cannot record a failure", "device", enr.ID, "err", err)
		return
	}
	j.Log.Warn(msg, "device", enr.ID, "profile", it.ProfileID, "identifier", it.Identifier,
		"reason", it.Error, "attempt", it.Attempts, "next_retry", it.NextRetry)
	if !it.NextRetry.IsZero() {
		j.Store.MarkDirty(ctx, []string{enr.ID}, it.NextRetry, false)
	}
	j.notify(ctx, EventFailed, enr, it)
}

// verifySoon asks for a ProfileList at once.
func (j *Job) verifySoon(ctx context.Context, enr *store.Enrollment) {
	if err := j.Store.MarkDirty(ctx, []string{enr.ID}, j.now(), true); err != nil {
		j.Log.Warn("profile reconciler: cannot queue a verification", "device", enr.ID, "err", err)
		return
	}
	j.Wake()
}

// profileList compares a ProfileList answer (its decoded document) with
// the items, in one transaction (store.VerifyProfileItems). An answer
// without its ProfileList array (Apple: required) is malformed and
// ignored: read as "no profiles" it would make every installed profile
// drift.
func (j *Job) profileList(ctx context.Context, enr *store.Enrollment, doc map[string]any) {
	v := j.listVerifier(enr, doc)
	if v == nil {
		j.Log.Warn("profile: a ProfileList answer without its ProfileList array: ignored", "device", enr.ID)
		return
	}
	put, err := j.Store.VerifyProfileItems(ctx, enr.ID, v.verify)
	if err != nil {
		j.Log.Warn("profile: cannot record a verification", "device", enr.ID, "err", err)
		return
	}
	v.applied(ctx, put)
}

// listVerification is one ProfileList answer's verification: verify is
// VerifyProfileItems' function (pure: it may run again), applied what
// follows once its items are stored (events, log, reconciler marks).
type listVerification struct {
	j     *Job
	enr   *store.Enrollment
	now   time.Time
	drift bool
	retry time.Time
	// listed: the PayloadIdentifiers the device lists.
	listed map[string]bool
}

// listVerifier reads a ProfileList answer's identifiers; nil when doc
// has no ProfileList array.
func (j *Job) listVerifier(enr *store.Enrollment, doc map[string]any) *listVerification {
	list, ok := doc["ProfileList"].([]any)
	if !ok {
		return nil
	}
	listed := make(map[string]bool, len(list))
	for _, x := range list {
		if d, ok := x.(map[string]any); ok {
			if id, ok := d["PayloadIdentifier"].(string); ok {
				listed[id] = true
			}
		}
	}
	return &listVerification{j: j, enr: enr, now: j.now(), listed: listed}
}

func (v *listVerification) verify(items []store.ProfileItem) (put []store.ProfileItem, del []string) {
	now := v.now
	byID := make(map[string]*store.ProfileItem, len(items))
	for i := range items {
		byID[items[i].ProfileID] = &items[i]
	}
	v.drift, v.retry = false, time.Time{}
	for _, c := range reconcile.Verify(toItems(items), v.listed) {
		if c.To == "" {
			del = append(del, c.ProfileID)
			continue
		}
		it := *byID[c.ProfileID]
		it.State, it.UpdatedAt = c.To, now
		switch {
		case c.To == reconcile.Failed && c.From == reconcile.Removing:
			// The device answered the RemoveProfile with Error (it.Error
			// is its chain) and still lists the profile: a refused
			// removal, retried after the backoff. Acknowledged stays
			// true: the profile is on the device.
			it.NextRetry = time.Time{}
			if it.Attempts < reconcile.MaxAttempts {
				it.NextRetry = now.Add(reconcile.Backoff(it.Attempts))
				if v.retry.IsZero() || it.NextRetry.Before(v.retry) {
					v.retry = it.NextRetry
				}
			}
		case c.To == reconcile.Failed:
			// Acknowledged, never seen installed: a failed attempt.
			it.Error, it.Acknowledged, it.NextRetry = "acknowledged, but missing from the device's ProfileList", false, time.Time{}
			if it.Attempts < reconcile.MaxAttempts {
				it.NextRetry = now.Add(reconcile.Backoff(it.Attempts))
				if v.retry.IsZero() || it.NextRetry.Before(v.retry) {
					v.retry = it.NextRetry
				}
			}
		case c.Drift:
			v.drift = true
			it.Error, it.Acknowledged = "missing from the device's ProfileList: reinstalling", false
		}
		put = append(put, it)
	}
	return put, del
}

// applied follows the stored verification: put is what it stored.
func (v *listVerification) applied(ctx context.Context, put []store.ProfileItem) {
	j, enr := v.j, v.enr
	for i := range put {
		it := &put[i]
		switch {
		case it.State == reconcile.Installed:
			j.Log.Info("profile: installed (verified by ProfileList)", "device", enr.ID, "profile", it.ProfileID, "identifier", it.Identifier, "version", it.Version)
			j.notify(ctx, EventInstalled, enr, it)
		case it.State == reconcile.Pending:
			j.Log.Warn("profile: drift, the device no longer has it", "device", enr.ID, "profile", it.ProfileID, "identifier", it.Identifier)
		case it.State == reconcile.Failed && it.Acknowledged:
			j.Log.Warn("profile: the device refused the removal", "device", enr.ID, "profile", it.ProfileID, "identifier", it.Identifier,
				"reason", it.Error, "attempt", it.Attempts, "next_retry", it.NextRetry)
			j.notify(ctx, EventFailed, enr, it)
		case it.State == reconcile.Failed:
			j.Log.Warn("profile: acknowledged but not in the device's ProfileList", "device", enr.ID, "profile", it.ProfileID, "identifier", it.Identifier,
				"attempt", it.Attempts, "next_retry", it.NextRetry)
			j.notify(ctx, EventFailed, enr, it)
		}
	}
	if !v.retry.IsZero() {
		j.Store.MarkDirty(ctx, []string{enr.ID}, v.retry, false)
	}
	if v.drift {
		j.Store.MarkDirty(ctx, []string{enr.ID}, j.now(), false)
		j.Wake()
	}
}
