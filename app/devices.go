package app

import (
	"context"
	"errors"
	"sort"

	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/push"
	"github.com/pomona-mdm/pomona/store"
)

// DeviceStore is what Devices reads.
type DeviceStore interface {
	Enrollment(ctx context.Context, deviceID string) (*store.Enrollment, error)
	EnrollmentByAppleID(ctx context.Context, enrollmentID string) (*store.Enrollment, error)
	EnrollmentForCommand(ctx context.Context, ref string, byAppleID bool, kind string) (*store.Enrollment, *store.Channel, error)
	Enrollments(ctx context.Context, f store.EnrollmentFilter) ([]store.Enrollment, error)
	Channels(ctx context.Context, deviceID string) ([]store.Channel, error)
	LatestRenewal(ctx context.Context, deviceID string) (*store.Renewal, error)
	CommandSummaries(ctx context.Context, channelID string, limit, maxResult int) ([]store.QueuedCommand, error)
	ChannelCommand(ctx context.Context, ref, uuid string) (*store.QueuedCommand, string, error)
}

// DevicePusher wakes a device's channels now and says what APNs answered.
type DevicePusher interface {
	PushNow(ctx context.Context, chs []store.Channel) ([]push.Result, error)
}

// Devices are the device and command use cases. A device is named by
// Pomona's DeviceID ("en_…") or by Apple's EnrollmentID (a "ref").
type Devices struct {
	Store    DeviceStore
	Commands *Commands
	Pusher   DevicePusher
	Users    *Users
	Tenants  *Tenants
	// Silence says which devices are silent (serve --silent-after); nil:
	// none are.
	Silence *lifecycle.Silence
}

// Get finds a device by DeviceID or EnrollmentID. Errors:
// store.ErrNotFound / NotFound (404).
func (d *Devices) Get(ctx context.Context, ref string) (*store.Enrollment, error) {
	if isDeviceID(ref) {
		return d.Store.Enrollment(ctx, ref)
	}
	e, err := d.Store.EnrollmentByAppleID(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, deviceNotFound(ref)
	}
	return e, err
}

// deviceNotFound is Get's NotFound for an EnrollmentID.
func deviceNotFound(ref string) error {
	return problem.New(problem.NotFound, "no device with id or EnrollmentID %q", ref)
}

// DeviceQuery selects a page of devices, newest first: by Status and
// Platform (exact; "" for any), Tenant and User (refs), before the
// DeviceID Before, at most Limit (default 100, at most 1000).
type DeviceQuery struct {
	Status, Platform, Tenant, User, Before string
	Limit                                  int
	// Silent selects the silent devices only (enrolled, not seen for
	// serve --silent-after); Status must then be "" or enrolled.
	Silent bool
}

// List returns a page of devices and the DeviceID to continue before (""
// when this page is the last). Errors: as Tenants.Resolve and Users.Get.
func (d *Devices) List(ctx context.Context, q DeviceQuery) ([]store.Enrollment, string, error) {
	// A misspelt state or platform ("enroled", "ios") matched no device:
	// an empty list an administrator read as "no such devices".
	switch q.Status {
	case "", store.EnrollmentPending, store.EnrollmentEnrolled, store.EnrollmentUnenrolled:
	default:
		return nil, "", problem.Coded(problem.Invalid, "invalid_parameter", "status %q: give pending, enrolled or unenrolled (or leave it out for every state)", q.Status)
	}
	switch q.Platform {
	case "", catalog.IOS, catalog.MacOS:
	default:
		return nil, "", problem.Coded(problem.Invalid, "invalid_parameter", "platform %q: give %s (iPhone and iPad) or %s (or leave it out for both)", q.Platform, catalog.IOS, catalog.MacOS)
	}
	f := store.EnrollmentFilter{Status: q.Status, Platform: q.Platform, Before: q.Before, Limit: limit(q.Limit)}
	if q.Tenant != "" {
		t, err := d.Tenants.Resolve(ctx, q.Tenant)
		if err != nil {
			return nil, "", err
		}
		f.TenantID = t.ID
	}
	if q.User != "" {
		u, err := d.Users.Get(ctx, q.User)
		if err != nil {
			return nil, "", err
		}
		f.UserID = u.ID
	}
	if q.Silent {
		if f.Status != "" && f.Status != store.EnrollmentEnrolled {
			return nil, "", problem.Coded(problem.Invalid, "invalid_parameter", "silent=true selects enrolled devices: leave out status or use status=enrolled")
		}
		f = d.silentFilter(f)
	}
	es, err := d.Store.Enrollments(ctx, f)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(es) == f.Limit {
		next = es[len(es)-1].ID
	}
	return es, next, nil
}

// Detail is one device with its channels and its latest identity renewal.
type Detail struct {
	Device   *store.Enrollment
	Channels []store.Channel
	Renewal  *store.Renewal // nil before the first renewal
	// Predecessor and Successor are the enrollments this one likely
	// replaces and was likely replaced by (nil: none; lifecycle.Links).
	Predecessor, Successor *store.Enrollment
}

// Detail finds the device ref with its channels and latest renewal.
// Errors: as Get.
func (d *Devices) Detail(ctx context.Context, ref string) (*Detail, error) {
	e, err := d.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	chs, err := d.Store.Channels(ctx, e.ID)
	if err != nil {
		return nil, err
	}
	out := &Detail{Device: e, Channels: chs}
	if out.Predecessor, out.Successor, err = lifecycle.Links(ctx, d.Store, e); err != nil {
		return nil, err
	}
	if rn, err := d.Store.LatestRenewal(ctx, e.ID); err == nil {
		out.Renewal = rn
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return out, nil
}

// QueuedCommand is a command of a device's history with the kind of the
// channel it went to ("device" or "user").
type QueuedCommand struct {
	store.QueuedCommand
	Channel string
}

// HistoryResultMax bounds the stored result a history list carries per
// command (bytes): a device's answers may be up to mdm.MaxResult (8 MB)
// each, and a list of 200 decoded whole was gigabytes of work per view
// (docs/benchmarks.md "Session 8 — leftovers"). A larger result is left
// out of the list (its ResultSize says how large it is) and read whole
// by Command, one at a time.
const HistoryResultMax = 64 << 10

// History returns the device's commands, at most perChannel of each
// channel, as the store orders them channel by channel (sorted: newest
// first), as summaries: no payload, and a result only up to
// HistoryResultMax bytes (store.MDMStore.CommandSummaries).
func (d *Devices) History(ctx context.Context, e *store.Enrollment, perChannel int, sorted bool) ([]QueuedCommand, error) {
	chs, err := d.Store.Channels(ctx, e.ID)
	if err != nil {
		return nil, err
	}
	var out []QueuedCommand
	for _, c := range chs {
		qs, err := d.Store.CommandSummaries(ctx, c.ID, perChannel, HistoryResultMax)
		if err != nil {
			return nil, err
		}
		for _, q := range qs {
			out = append(out, QueuedCommand{QueuedCommand: q, Channel: c.Kind})
		}
	}
	if sorted {
		sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	}
	return out, nil
}

// Command is one command of the device ref's history, whole: its payload
// and its full result. Errors: as Get; NotFound when none of the device's
// channels has it.
func (d *Devices) Command(ctx context.Context, ref, commandUUID string) (*store.Enrollment, *QueuedCommand, error) {
	e, err := d.Get(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	q, kind, err := d.Store.ChannelCommand(ctx, e.ID, commandUUID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, problem.New(problem.NotFound, "That command is not in this device's history.")
	}
	if err != nil {
		return nil, nil, err
	}
	return e, &QueuedCommand{QueuedCommand: *q, Channel: kind}, nil
}

// Enqueue checks a command against Apple's rules for the device's platform
// and queues it for the device ref, then pushes (unless req.NoPush); with
// req.Idempotency a repeat replays the first answer. It returns the device
// (without its MachineInfo and Inventory: store.MDMStore.EnrollmentForCommand,
// which reads it with its channel in one statement) and the CommandUUID. Errors: as Get; Unprocessable command_refused (the
// rules refuse it; errors.As finds the *catalog.Refusal) or
// idempotency_key_reused; Conflict not_enrolled (no Authenticate yet, no
// such channel, unenrolled).
func (d *Devices) Enqueue(ctx context.Context, ref string, req EnqueueRequest) (*store.Enrollment, string, error) {
	// The enrollment and its channel in one statement (Get, then
	// Commands.Enqueue's channel read, were two); the same errors.
	byAppleID := !isDeviceID(ref)
	e, ch, err := d.Store.EnrollmentForCommand(ctx, ref, byAppleID, channelKind(req.Channel))
	if byAppleID && errors.Is(err, store.ErrNotFound) {
		return nil, "", deviceNotFound(ref)
	}
	if err != nil {
		return nil, "", err
	}
	id, err := d.Commands.enqueueOne(ctx, e, ch, true, req)
	return e, id, err
}

// Resend queues again a command of the device's history (the same payload
// under a new CommandUUID, to the same channel) and returns its request
// type and new CommandUUID. Errors: as Enqueue; NotFound when the command
// is not in the device's history; Conflict for a profile install rendered
// per device at delivery (store.CommandRecord.Render: not a command to
// copy).
func (d *Devices) Resend(ctx context.Context, ref, commandUUID, by string) (string, string, error) {
	e, q, err := d.Command(ctx, ref, commandUUID)
	if err != nil {
		return "", "", err
	}
	if q.Render != store.RenderReady {
		// Its payload is a profile template filled per device at
		// delivery, not a command: queued as raw bytes it would be
		// refused, or send the placeholders. The reconciler re-queues a
		// profile (the profile's retry).
		return "", "", problem.New(problem.Conflict, "This profile install is rendered per device by the reconciler: retry it from the profile's status instead.")
	}
	id, err := d.Commands.Enqueue(ctx, e, EnqueueRequest{Plist: q.Payload, Channel: q.Channel, CreatedBy: by})
	return q.RequestType, id, err
}

// Push wakes every channel of the device ref now and returns APNs'
// answers per channel. Errors: as Get; Conflict cannot_push when no push
// is possible (no push certificate, no token).
func (d *Devices) Push(ctx context.Context, ref string) (*store.Enrollment, []push.Result, error) {
	e, err := d.Get(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	chs, err := d.Store.Channels(ctx, e.ID)
	if err != nil {
		return nil, nil, err
	}
	res, err := d.Pusher.PushNow(ctx, chs)
	if err != nil {
		return nil, nil, &problem.Error{Kind: problem.Conflict, Code: "cannot_push", Message: err.Error(), Err: err}
	}
	return e, res, nil
}

// Unenroll removes the device ref from management: RemoveProfile of the
// enrollment profile (the device deletes its managed data and checks
// out); with immediately — or when the device never finished enrolling —
// the server also forgets it at once and answers its next request
// com.apple.unrecognized.device (iOS 17+, macOS 14+ then unenroll
// themselves). Errors: as Get and Enqueue.
func (d *Devices) Unenroll(ctx context.Context, ref string, immediately bool, by string) (*store.Enrollment, *Unenrolled, error) {
	e, err := d.Get(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	u, err := d.Commands.Unenroll(ctx, e, immediately, by)
	return e, u, err
}

// Targets selects devices for a bulk command: DeviceIDs (or Apple's
// EnrollmentIDs), users (refs) and a tenant (ref); the union is taken.
type Targets struct {
	Devices []string
	Users   []string
	Tenant  string
}

// EnqueueBulk queues one command for every enrolled device channel the
// targets select, in one transaction, and pushes them; targets on a
// platform where Apple forbids the command are skipped and counted.
// Errors: Invalid invalid_request without targets; as Tenants.Resolve and
// Users.Get; Conflict not_enrolled when nothing matches; Unprocessable
// command_refused when every platform refuses; idempotency_key_reused.
func (d *Devices) EnqueueBulk(ctx context.Context, t Targets, req EnqueueRequest) (*BulkResult, error) {
	f := store.TargetFilter{EnrollmentIDs: t.Devices}
	if t.Tenant != "" {
		tn, err := d.Tenants.Resolve(ctx, t.Tenant)
		if err != nil {
			return nil, err
		}
		f.TenantID = tn.ID
	}
	for _, ref := range t.Users {
		u, err := d.Users.Get(ctx, ref)
		if err != nil {
			return nil, err
		}
		f.UserIDs = append(f.UserIDs, u.ID)
	}
	if f.TenantID == "" && len(f.UserIDs) == 0 && len(f.EnrollmentIDs) == 0 {
		return nil, problem.Coded(problem.Invalid, "invalid_request", "targets needs devices, users or a tenant")
	}
	return d.Commands.EnqueueBulk(ctx, f, req)
}
