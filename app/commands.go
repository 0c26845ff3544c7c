package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/profile"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/untrusted"
)

// Pusher wakes channels through APNs.
type Pusher interface {
	Push(ctx context.Context, channels []store.Channel)
}

// Commands queues MDM commands for enrolled devices after checking them
// against Apple's rules for user enrollments (mdm/catalog, generated from
// Apple's device-management schema; Commands reference:
// https://developer.apple.com/documentation/devicemanagement/commands-and-queries).
// It is the use case under Devices.Enqueue and EnqueueBulk, the renewal
// job and the endings; it takes the device's store.Enrollment already
// resolved.
type Commands struct {
	Store interface {
		store.MDMStore
		store.EnrollmentStore
		store.IdempotencyStore
	}
	Catalog *catalog.Catalog
	Push    Pusher // nil: no push
	Now     func() time.Time

	// lastPurge is when expired idempotency keys were last deleted (Unix
	// seconds), so that this happens about hourly, not per request.
	lastPurge atomic.Int64
}

// IdempotencyTTL is how long an idempotency key is remembered: a repeat
// within it replays the first answer; after it the key may name another
// request.
const IdempotencyTTL = 24 * time.Hour

// Idempotency makes Enqueue and EnqueueBulk happen at most once per key
// (draft-ietf-httpapi-idempotency-key-header): a request repeating Key
// from the same Principal within IdempotencyTTL queues nothing and gets
// the first request's answer; with another Fingerprint it gets
// ErrIdempotencyKeyReused. Failed requests record nothing (a repeat runs
// anew).
type Idempotency struct {
	// Principal is the credential; keys are scoped to it.
	Principal string
	// Key is the client's key, 1–255 printable ASCII characters.
	Key string
	// Fingerprint identifies the request (e.g. a hash of method, path and
	// canonical body).
	Fingerprint string
}

// ErrIdempotencyKeyReused is the answer to a key repeated with a
// different request (422, code idempotency_key_reused).
var ErrIdempotencyKeyReused = problem.Coded(problem.Unprocessable, "idempotency_key_reused",
	"this Idempotency-Key was already used for a different request; send a new key for a new request")

// AdminPlist bounds a raw command plist from the API or the console (the
// API's request bodies are at most 1 MiB); binary plists are refused by
// package untrusted like every plist from outside.
var AdminPlist = untrusted.PlistLimits{MaxSize: 1 << 20, MaxDepth: 32, MaxElements: 50000}

// EnqueueRequest is one command for one enrollment.
type EnqueueRequest struct {
	// JSON is a typed command ({"request_type": "DeviceInformation", ...});
	// Plist is a raw command dictionary (or a full {CommandUUID, Command}
	// document). Exactly one is set.
	JSON  map[string]any
	Plist []byte
	// Channel is "device" (default) or "user" (a Mac's user channel).
	Channel   string
	ExpiresAt time.Time
	NoPush    bool
	CreatedBy string
	// Idempotency, when set, makes the request happen at most once.
	Idempotency *Idempotency
}

// The device cannot take commands: each is a Conflict (409, code
// not_enrolled).
var (
	ErrNotEnrolled = problem.Coded(problem.Conflict, "not_enrolled", "the device has not completed enrollment yet (no Authenticate)")
	ErrNoChannel   = problem.Coded(problem.Conflict, "not_enrolled", "the enrollment has no such channel")
	ErrUnenrolled  = problem.Coded(problem.Conflict, "not_enrolled", "the device is unenrolled")
)

// notEnrolled is sentinel with more detail; errors.Is(err, sentinel) holds.
func notEnrolled(sentinel *problem.Error, format string, args ...any) error {
	return &problem.Error{Kind: sentinel.Kind, Code: sentinel.Code, Message: sentinel.Message + ": " + fmt.Sprintf(format, args...), Err: sentinel}
}

// refused is Apple's rules (or the server's) refusing a command: 422,
// code command_refused; errors.As finds the *catalog.Refusal.
func refused(err error) error {
	var ref *catalog.Refusal
	if errors.As(err, &ref) {
		return &problem.Error{Kind: problem.Unprocessable, Code: "command_refused", Message: "Refused: " + ref.Error(), Err: ref}
	}
	return err
}

// Build validates a command for platform and returns its request type and
// the command dictionary.
func (c *Commands) Build(platform string, r EnqueueRequest) (string, map[string]any, error) {
	var cmd map[string]any
	var err error
	switch {
	case r.JSON != nil && r.Plist != nil:
		return "", nil, &catalog.Refusal{Reason: "give either a typed command or a plist, not both"}
	case r.JSON != nil:
		cmd, err = c.Catalog.FromJSON(platform, r.JSON)
	case r.Plist != nil:
		var doc map[string]any
		if err := untrusted.Plist(r.Plist, &doc, AdminPlist); err != nil {
			return "", nil, &catalog.Refusal{Reason: "the plist does not parse: " + err.Error()}
		}
		if inner, ok := doc["Command"].(map[string]any); ok {
			doc = inner
		}
		cmd, err = doc, c.Catalog.Check(platform, doc)
	default:
		return "", nil, &catalog.Refusal{Reason: "no command given"}
	}
	if err != nil {
		return "", nil, err
	}
	rt, _ := cmd["RequestType"].(string)
	if rt == "DeclarativeManagement" {
		// Apple allows it, but the device would then check in for
		// declarations this server does not serve yet.
		return "", nil, &catalog.Refusal{RequestType: rt, Reason: "declarative management is not enabled on this server"}
	}
	return rt, cmd, nil
}

// channel resolves the queue a command for enr goes to: its channel of
// kind ("" for the device channel).
func (c *Commands) channel(ctx context.Context, enr *store.Enrollment, kind string) (*store.Channel, error) {
	if err := enqueueable(enr); err != nil {
		return nil, err
	}
	chs, err := c.Store.Channels(ctx, enr.ID)
	if err != nil {
		return nil, err
	}
	kind = channelKind(kind)
	for i := range chs {
		if chs[i].Kind == kind {
			return &chs[i], nil
		}
	}
	return nil, noChannel(kind)
}

// channelKind is the channel kind of an EnqueueRequest's Channel.
func channelKind(kind string) string {
	if kind == "" {
		return mdm.DeviceChannel
	}
	return kind
}

// enqueueable refuses an enrollment that cannot take commands: never
// bound to Apple's EnrollmentID, or ended.
func enqueueable(enr *store.Enrollment) error {
	if enr.AppleEnrollmentID == "" {
		return ErrNotEnrolled
	}
	if enr.Status == store.EnrollmentUnenrolled {
		return ErrUnenrolled
	}
	return nil
}

func noChannel(kind string) error {
	return notEnrolled(ErrNoChannel, "no %s channel (it appears with the channel's TokenUpdate)", kind)
}

// Enqueue validates and queues a command for one device (its device
// channel, or r.Channel "user" for a Mac's user channel), then pushes
// unless r.NoPush, and returns the new CommandUUID (upper-case UUID). With
// r.Idempotency a repeat within IdempotencyTTL returns the first
// CommandUUID and queues nothing. Errors: Conflict not_enrolled
// (ErrNotEnrolled, ErrUnenrolled, ErrNoChannel); Unprocessable
// command_refused (a *catalog.Refusal inside: a command or key Apple
// forbids for user enrollments, a plist over AdminPlist's bounds, a
// DeclarativeManagement command) or idempotency_key_reused.
func (c *Commands) Enqueue(ctx context.Context, enr *store.Enrollment, r EnqueueRequest) (string, error) {
	return c.enqueueOne(ctx, enr, nil, false, r)
}

// enqueueOne is Enqueue; with chRead, ch is enr's channel of r.Channel's
// kind as already read with enr (nil: it has none:
// store.MDMStore.EnrollmentForCommand), otherwise it is read here. Either
// way it is looked at after an idempotent replay, as the replay answers
// whatever became of the device since.
func (c *Commands) enqueueOne(ctx context.Context, enr *store.Enrollment, ch *store.Channel, chRead bool, r EnqueueRequest) (string, error) {
	var done queuedOne
	if ok, err := c.replay(ctx, r.Idempotency, &done); ok || err != nil {
		return done.CommandUUID, err
	}
	var err error
	switch {
	case !chRead:
		ch, err = c.channel(ctx, enr, r.Channel)
	case enqueueable(enr) != nil:
		err = enqueueable(enr)
	case ch == nil:
		err = noChannel(channelKind(r.Channel))
	}
	if err != nil {
		return "", err
	}
	platform := catalog.IOS
	if enr.Platform == catalog.MacOS {
		platform = catalog.MacOS
	}
	rt, cmd, err := c.Build(platform, r)
	if err != nil {
		return "", refused(err)
	}
	id := profile.NewUUID()
	payload, err := mdm.Command{CommandUUID: id, Command: cmd}.Encode()
	if err != nil {
		return "", err
	}
	if ok, err := c.enqueue(ctx, r.Idempotency, &store.CommandRecord{UUID: id, RequestType: rt, Payload: payload, CreatedAt: c.Now().UTC().Truncate(time.Microsecond),
		ExpiresAt: r.ExpiresAt, CreatedBy: r.CreatedBy}, []string{ch.ID}, &done, queuedOne{CommandUUID: id}); ok || err != nil {
		return done.CommandUUID, err
	}
	if !r.NoPush && c.Push != nil {
		c.Push.Push(ctx, []store.Channel{*ch})
	}
	return id, nil
}

// queuedOne is what a repeated Enqueue replays.
type queuedOne struct {
	CommandUUID string `json:"command_uuid"`
}

// replay answers a request whose idempotency key is known: it decodes the
// first answer into out and returns true, or ErrIdempotencyKeyReused.
func (c *Commands) replay(ctx context.Context, k *Idempotency, out any) (bool, error) {
	if k == nil {
		return false, nil
	}
	rec, err := c.Store.IdempotencyKey(ctx, k.Principal, k.Key, c.Now())
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, replayed(rec, k, out)
}

func replayed(rec *store.IdempotencyKey, k *Idempotency, out any) error {
	if rec.Fingerprint != k.Fingerprint {
		return ErrIdempotencyKeyReused
	}
	if err := json.Unmarshal(rec.Response, out); err != nil {
		return fmt.Errorf("stored answer of idempotency key: %w", err)
	}
	return nil
}

// enqueue stores cmd for channelIDs, under the idempotency key k when set
// with answer as what a repeat gets. When a request with the same key won
// (a concurrent repeat), nothing is queued: its answer is decoded into
// out and enqueue returns true.
//
// The audit entry of ctx's request (RequestAudit), when its caller gave
// the success status, is written in the same transaction as the command
// and marked written only when that transaction committed and queued the
// command (not on failure, not on a replay).
func (c *Commands) enqueue(ctx context.Context, k *Idempotency, cmd *store.CommandRecord, channelIDs []string, out, answer any) (bool, error) {
	ra := claimRequestAudit(ctx)
	if ra != nil {
		cmd.Audit = &ra.Entry
	}
	if k == nil {
		err := c.Store.Enqueue(ctx, cmd, channelIDs)
		if ra != nil {
			ra.written = err == nil
		}
		return false, err
	}
	b, err := json.Marshal(answer)
	if err != nil {
		return false, err
	}
	now := c.Now().UTC().Truncate(time.Microsecond)
	rec := &store.IdempotencyKey{Principal: k.Principal, Key: k.Key, Fingerprint: k.Fingerprint, Response: b, CreatedAt: now, ExpiresAt: now.Add(IdempotencyTTL)}
	existing, err := c.Store.EnqueueOnce(ctx, rec, cmd, channelIDs)
	if err != nil {
		return false, err
	}
	if existing != nil {
		return true, replayed(existing, k, out)
	}
	if ra != nil {
		ra.written = true
	}
	c.purgeKeys(ctx, now)
	return false, nil
}

// purgeKeys deletes expired idempotency keys about hourly: they only take
// room (lookups ignore them); a failed purge is retried an hour later.
func (c *Commands) purgeKeys(ctx context.Context, now time.Time) {
	if last := c.lastPurge.Load(); now.Unix()-last >= 3600 && c.lastPurge.CompareAndSwap(last, now.Unix()) {
		c.Store.PurgeIdempotencyKeys(ctx, now)
	}
}

// BulkResult says what a bulk command did.
type BulkResult struct {
	CommandUUID string         `json:"command_uuid"`
	Queued      int            `json:"queued"`
	Skipped     []BulkSkip     `json:"skipped"`
	ByPlatform  map[string]int `json:"by_platform"`
}

// BulkSkip counts targets left out and why.
type BulkSkip struct {
	Platform string `json:"platform"`
	Count    int    `json:"count"`
	Reason   string `json:"reason"`
}

// EnqueueBulk queues one command (one CommandUUID) for every enrolled
// device channel that f selects, in one transaction, and pushes them.
// Targets on a platform where Apple forbids the command (or one of its
// keys) for user enrollments are skipped and counted in Skipped. Errors:
// Conflict not_enrolled when nothing enrolled matches; Unprocessable
// command_refused when every platform refuses; idempotency_key_reused.
//
// The targets are not read into the server: the store counts them per
// platform and queues the command with one INSERT … SELECT
// (store.MDMStore.EnqueueTargets), in the transaction that also holds the
// idempotency key and the audit entry. Only lists of ids longer than
// store.TargetListMax go through TargetChannels and Enqueue. With a push,
// the channels to wake are read after the commit.
func (c *Commands) EnqueueBulk(ctx context.Context, f store.TargetFilter, r EnqueueRequest) (*BulkResult, error) {
	var done BulkResult
	if ok, err := c.replay(ctx, r.Idempotency, &done); err != nil {
		return nil, err
	} else if ok {
		return &done, nil
	}
	if len(f.UserIDs)+len(f.EnrollmentIDs) > store.TargetListMax {
		return c.enqueueBulkRead(ctx, f, r)
	}
	id := profile.NewUUID()
	rec := &store.CommandRecord{UUID: id, CreatedAt: c.Now().UTC().Truncate(time.Microsecond), ExpiresAt: r.ExpiresAt, CreatedBy: r.CreatedBy}
	builds := map[string]bulkBuild{}
	var res *BulkResult
	var allowed []string
	plan := func(counts map[string]int) ([]string, []byte, error) {
		var b bulkBuild
		var err error
		res, allowed, b, err = c.bulkPlan(counts, builds, r)
		if err != nil {
			return nil, nil, err
		}
		res.CommandUUID = id
		if rec.Payload, err = (mdm.Command{CommandUUID: id, Command: b.cmd}).Encode(); err != nil {
			return nil, nil, err
		}
		rec.RequestType = b.rt
		answer, err := json.Marshal(res)
		return allowed, answer, err
	}
	ra := claimRequestAudit(ctx)
	if ra != nil {
		rec.Audit = &ra.Entry
	}
	var k *store.IdempotencyKey
	now := c.Now().UTC().Truncate(time.Microsecond)
	if ik := r.Idempotency; ik != nil {
		k = &store.IdempotencyKey{Principal: ik.Principal, Key: ik.Key, Fingerprint: ik.Fingerprint, CreatedAt: now, ExpiresAt: now.Add(IdempotencyTTL)}
	}
	// The store checks that it queued exactly the planned rows.
	_, existing, err := c.Store.EnqueueTargets(ctx, k, rec, f, plan)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		if err := replayed(existing, r.Idempotency, &done); err != nil {
			return nil, err
		}
		return &done, nil
	}
	if ra != nil {
		ra.written = true
	}
	if k != nil {
		c.purgeKeys(ctx, now)
	}
	if !r.NoPush && c.Push != nil {
		targets, err := c.Store.TargetChannels(ctx, f)
		if err != nil {
			// The command is queued (and committed): the devices get it
			// at their next poll or the re-push job's push.
			return res, nil
		}
		c.pushTargets(ctx, targets, allowed)
	}
	return res, nil
}

// bulkBuild is a command built for one catalog platform, or why that
// platform refuses it.
type bulkBuild struct {
	rt      string
	cmd     map[string]any
	refusal error
}

// bulkPlan decides a bulk command from the count of its targets per
// enrollment platform: the command is built (checked against Apple's rules)
// once per catalog platform (builds caches them across calls), the
// platforms that refuse it are counted in Skipped. It returns the answer,
// the platforms to queue for and the build whose payload is queued.
func (c *Commands) bulkPlan(counts map[string]int, builds map[string]bulkBuild, r EnqueueRequest) (*BulkResult, []string, bulkBuild, error) {
	if len(counts) == 0 {
		return nil, nil, bulkBuild{}, notEnrolled(ErrNotEnrolled, "no enrolled device matches the targets")
	}
	res := &BulkResult{Skipped: []BulkSkip{}, ByPlatform: map[string]int{}}
	platforms := make([]string, 0, len(counts))
	for p := range counts {
		platforms = append(platforms, p)
	}
	// In a fixed order: which platform's build is queued, and the order
	// of Skipped, do not depend on map iteration.
	sort.Strings(platforms)
	var use bulkBuild
	var firstRefusal error
	var allowed []string
	for _, platform := range platforms {
		cp := catalog.IOS
		if platform == catalog.MacOS {
			cp = catalog.MacOS
		}
		b, ok := builds[cp]
		if !ok {
			rt, cmd, err := c.Build(cp, r)
			if err != nil {
				var ref *catalog.Refusal
				if !errors.As(err, &ref) {
					return nil, nil, bulkBuild{}, err
				}
				b.refusal = err
			} else {
				b.rt, b.cmd = rt, cmd
			}
			builds[cp] = b
		}
		n := counts[platform]
		if b.refusal != nil {
			if firstRefusal == nil {
				firstRefusal = b.refusal
			}
			res.Skipped = append(res.Skipped, BulkSkip{Platform: platform, Count: n, Reason: b.refusal.Error()})
			continue
		}
		use = b
		res.ByPlatform[platform] = n
		res.Queued += n
		allowed = append(allowed, platform)
	}
	if res.Queued == 0 {
		return nil, nil, bulkBuild{}, refused(firstRefusal)
	}
	return res, allowed, use, nil
}

// pushTargets wakes the targets on the allowed platforms that have a live
// push token.
func (c *Commands) pushTargets(ctx context.Context, targets []store.ChannelTarget, allowed []string) {
	ok := make(map[string]bool, len(allowed))
	for _, p := range allowed {
		ok[p] = true
	}
	chs := make([]store.Channel, 0, len(targets))
	for i := range targets {
		if t := &targets[i]; ok[t.Platform] && len(t.PushToken) > 0 && t.PushMagic != "" && !t.PushDead {
			chs = append(chs, t.PushChannel())
		}
	}
	if len(chs) > 0 {
		c.Push.Push(ctx, chs)
	}
}

// enqueueBulkRead is EnqueueBulk for lists of ids too long for one
// statement: the targets are read (TargetChannels), counted and queued by
// id (Enqueue, or EnqueueOnce with a key).
func (c *Commands) enqueueBulkRead(ctx context.Context, f store.TargetFilter, r EnqueueRequest) (*BulkResult, error) {
	var done BulkResult
	targets, err := c.Store.TargetChannels(ctx, f)
	if err != nil {
		return nil, err
	}
	count := map[string]int{}
	for i := range targets {
		count[targets[i].Platform]++
	}
	res, allowed, b, err := c.bulkPlan(count, map[string]bulkBuild{}, r)
	if err != nil {
		return nil, err
	}
	ok := map[string]bool{}
	for _, p := range allowed {
		ok[p] = true
	}
	ids := make([]string, 0, res.Queued)
	for i := range targets {
		if ok[targets[i].Platform] {
			ids = append(ids, targets[i].ChannelID)
		}
	}
	id := profile.NewUUID()
	payload, err := mdm.Command{CommandUUID: id, Command: b.cmd}.Encode()
	if err != nil {
		return nil, err
	}
	res.CommandUUID = id
	if ok, err := c.enqueue(ctx, r.Idempotency, &store.CommandRecord{UUID: id, RequestType: b.rt, Payload: payload, CreatedAt: c.Now().UTC().Truncate(time.Microsecond),
		ExpiresAt: r.ExpiresAt, CreatedBy: r.CreatedBy}, ids, &done, res); ok || err != nil {
		if err != nil {
			return nil, err
		}
		return &done, nil
	}
	if !r.NoPush && c.Push != nil {
		c.pushTargets(ctx, targets, allowed)
	}
	return res, nil
}

// Unenrolled says what Unenroll did.
type Unenrolled struct {
	// CommandUUID is the RemoveProfile sent to the device ("" when the
	// device never completed enrollment or is gone already).
	CommandUUID string
	// Forgotten: the server treats the device as unenrolled now; its next
	// request is answered com.apple.unrecognized.device.
	Forgotten bool
}

// Unenroll removes a device from management: RemoveProfile of the
// enrollment profile (the device deletes its managed data and checks out),
// and with immediately — or when the device never finished enrolling —
// the server forgets it at once (its enrollment ends with the reason
// "unenrolled by <by>"). Errors: as Enqueue.
func (c *Commands) Unenroll(ctx context.Context, enr *store.Enrollment, immediately bool, by string) (*Unenrolled, error) {
	out := &Unenrolled{}
	if enr.AppleEnrollmentID != "" && enr.Status == store.EnrollmentEnrolled {
		id, err := c.Enqueue(ctx, enr, EnqueueRequest{JSON: map[string]any{"request_type": "RemoveProfile", "identifier": enr.ProfileID}, CreatedBy: by})
		if err != nil {
			return nil, err
		}
		out.CommandUUID = id
	}
	if immediately || enr.AppleEnrollmentID == "" {
		if err := c.Store.EndEnrollment(ctx, enr.ID, "unenrolled by "+by, c.Now().UTC().Truncate(time.Microsecond)); err != nil {
			return nil, err
		}
		out.Forgotten = true
	}
	return out, nil
}
