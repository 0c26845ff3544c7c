package store

import (
	"context"
	"errors"
	"time"
)

// Channel is the device channel of an enrollment or one of a Mac's user
// channels, with its push token. A channel is identified by who owns it —
// (EnrollmentRef, Kind, EnrollmentUserID), unique in the store — never by
// a string the device chose; ID is Pomona's own name for it (random for
// new channels), used by the queue and the admin side.
type Channel struct {
	ID       string
	DeviceID string // Enrollment.ID
	Kind     string // device or user
	// EnrollmentUserID is Apple's EnrollmentUserID of a user channel; empty
	// on the device channel (the store refuses any other combination).
	EnrollmentUserID string
	UserShortName    string
	UserLongName     string
	PushToken        []byte
	PushMagic        string
	PushDead         bool
	LastPushAt       time.Time
	LastSeenAt       time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// PushResult is one channel's APNs answer to record (SetPushResults).
type PushResult struct {
	ChannelID string
	// Dead: APNs answered that the token is gone (410, or 400
	// BadDeviceToken/DeviceTokenNotForTopic); the channel is not pushed
	// again until its next TokenUpdate.
	Dead bool
	// Token is the push token the answer is about. A dead answer is
	// recorded only while the channel still has it: a TokenUpdate since
	// the push brought a new token, which APNs has not called dead (nil:
	// recorded whatever the channel's token).
	Token []byte
}

// Queue statuses: Pomona's own. A command the device answered has the
// result's Status as the device sent it, in Apple's words (mdm.Acknowledged,
// mdm.Error, mdm.CommandFormatError, mdm.NotNow: one source, package mdm,
// which store does not import so that it stays the lowest layer).
const (
	QueueQueued  = "queued"
	QueueSent    = "sent"
	QueueExpired = "expired"
	// QueueUndeliverable: a template command that can never be rendered
	// for this channel (ErrCannotRender), taken out of the queue so that
	// the commands behind it reach the device (MDMStore.SetUndeliverable).
	QueueUndeliverable = "undeliverable"
)

// ErrCannotRender marks a template command's render failure that no retry
// can cure for that queue row: its Vars do not decode, the template does
// not parse or lacks a value the row does not carry, an unknown Render
// marker. The MDM service then fails the row (SetUndeliverable) and hands
// out the next command; any other render error (a signer or store that is
// briefly unavailable) is answered 5xx and the device asks again.
var ErrCannotRender = errors.New("the command cannot be rendered for this device")

// CommandRecord is one command as stored: what to send (Payload is the
// command plist, mdm.Command encoded) and who queued it when. Named apart
// from mdm.Command (the protocol's command) and catalog.CommandSchema.
type CommandRecord struct {
	UUID        string
	RequestType string
	Payload     []byte
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never
	CreatedBy   string
	// Render says how Payload becomes the command a device gets: ""
	// (RenderReady) it is the command plist; RenderProfile or
	// RenderProfileSigned it is a stored profile plist (a template with
	// per-user variables, docs/profiles.md "Rendered at delivery") that
	// the MDM service renders with the queue row's Vars, signs when
	// marked, and wraps in an InstallProfile under UUID. Only the
	// reconciler writes templates (ApplyReconcile); Enqueue and
	// EnqueueTargets store ready commands.
	Render string
	// Audit, when set, is the audit entry of the request that queues the
	// command: Enqueue and EnqueueOnce append it in the same transaction
	// (and set its ID), so that the command and the record of who queued
	// it share one durable commit and neither exists without the other.
	// It is not written when the transaction fails or when EnqueueOnce
	// finds the key already used (nothing is queued then). Never read
	// back (QueuedCommand leaves it nil).
	Audit *AuditEntry
}

// Values of CommandRecord.Render.
const (
	RenderReady         = ""
	RenderProfile       = "profile"
	RenderProfileSigned = "profile+sign"
)

// QueuedCommand is a command in one channel's queue.
type QueuedCommand struct {
	CommandRecord
	ChannelID string
	// Vars are this channel's values for a template command (Render not
	// ""): the encoding of the variables the template uses (package
	// reconcile, EncodeVars); "" for a ready command. They are this
	// device's own: never shown with another device's command.
	Vars   string
	Status string
	Result []byte
	// ResultSize is the stored result's length in bytes (0: none). Set by
	// CommandSummaries (whose Result is nil when it is over the bound)
	// and ChannelCommand.
	ResultSize int
	SentAt     time.Time
	UpdatedAt  time.Time
}

// InventoryFunc says what a result adds to the inventory, given the
// command's request type (ok false: nothing).
type InventoryFunc func(requestType string) (section string, data any, info *DeviceInfo, ok bool)

// ProfileAck asks MDMStore.RecordResultNext to apply an Acknowledged
// result of one of Pomona's profile commands to the profile engine's
// items in the result's own transaction — one durable commit per answer
// instead of two (the result's, then AcknowledgeProfileItem's or
// VerifyProfileItems'; docs/benchmarks.md "Session 7 — round trip"): an
// InstallProfile as AcknowledgeProfileItem (with Verify's command), a
// ProfileList as VerifyProfileItems (with List), by the request type as
// queued. Done, Queued and Put are set when RecordResultNext returns
// without an error, and only then mean anything.
type ProfileAck struct {
	// Verify builds the ProfileList that verifies an install (nil, or nil
	// returned: none, the periodic verification confirms it). Called at
	// most once per attempt of the transaction, only for an InstallProfile;
	// it must not touch the store.
	Verify func() *CommandRecord
	// List is VerifyProfileItems' verify for a ProfileList answer (nil:
	// a ProfileList is left to the caller). Pure: it may run again when
	// the transaction is retried.
	List func(items []ProfileItem) (put []ProfileItem, del []string)
	// Done: the answer was applied in the result's transaction — for an
	// install also a repeat that changed nothing, or no item of the
	// enrollment having the command (not Pomona's profile, or superseded),
	// as AcknowledgeProfileItem's ErrNotFound. False: not one of these
	// answers, or its writes failed and were rolled back (the result is
	// stored all the same, and the caller applies it on its own).
	Done bool
	// Queued: Verify's command was queued for the channel.
	Queued bool
	// Put: the items a ProfileList answer put (VerifyProfileItems' result).
	Put []ProfileItem
}

// DeviceInfo is what Authenticate (and later DeviceInformation results)
// tell about the device: OS version and build, product, names and model.
type DeviceInfo struct {
	OSVersion, BuildVersion, ProductName, DeviceName, Model, ModelName string
}

// MDMStore keeps the MDM channel's state.
type MDMStore interface {
	// BindAppleEnrollment records Apple's EnrollmentID for the enrollment
	// (at Authenticate) and marks it enrolled. Repeating it for the same
	// pair is fine; an enrollment bound to another EnrollmentID, or an
	// EnrollmentID bound to another enrollment, gives ErrConflict.
	BindAppleEnrollment(ctx context.Context, ref, appleID string, info DeviceInfo, now time.Time) error
	EnrollmentByAppleID(ctx context.Context, appleID string) (*Enrollment, error)
	// EnrollmentForCommand is what enqueuing a command for one device
	// reads, in one statement: the enrollment named by ref — its ID, or
	// its Apple EnrollmentID when byAppleID — and its channel of kind
	// (the first by id; nil when it has none). The enrollment's
	// MachineInfo and Inventory are not read (left empty: blobs that grow
	// with the device's answers). ErrNotFound when no enrollment has that
	// name.
	EnrollmentForCommand(ctx context.Context, ref string, byAppleID bool, kind string) (*Enrollment, *Channel, error)
	// EndEnrollment ends an enrollment for good — the one operation every
	// ending (CheckOut, unenroll, and later user or tenant deletion) goes
	// through. In one transaction the enrollment becomes unenrolled (the
	// first ending time stands), every identity certificate issued to it is
	// marked revoked at now with reason, and every access token bound to it
	// (and the unbound token that created it) is revoked. Ending twice is
	// not an error; an unknown ref gives ErrNotFound. An ended enrollment
	// never becomes enrolled again (BindAppleEnrollment refuses it).
	EndEnrollment(ctx context.Context, ref, reason string, now time.Time) error
	// PutChannel stores the channel identified by (c.EnrollmentRef, c.Kind,
	// c.EnrollmentUserID), or updates its push token, names and last-seen
	// time if it exists; c.ID is used for a new row only, and is set to the
	// stored id on return. A kind other than device/user, a device channel
	// with an EnrollmentUserID or a user channel without one breaks the
	// store's CHECK (ErrConflict or an error, never a row).
	PutChannel(ctx context.Context, c *Channel) error
	// Channel returns the channel of enrollment ref with that kind and
	// EnrollmentUserID ("" for the device channel); ErrNotFound when the
	// enrollment has none (another enrollment's channel is never found).
	Channel(ctx context.Context, ref, kind, enrollmentUserID string) (*Channel, error)
	Channels(ctx context.Context, ref string) ([]Channel, error)
	// TouchChannel records that channel id of enrollment ref was seen (on
	// the channel and the enrollment, both or neither); it does nothing
	// when the channel is not ref's. It is visible to every read once it
	// returns but may be lost in a crash (not a durable commit of its own:
	// a last-seen time is written again by the device's next poll).
	TouchChannel(ctx context.Context, ref, id string, now time.Time) error
	SetPushResult(ctx context.Context, id string, dead bool, at time.Time) error
	// SetPushResults records the APNs answers of one fan-out at at: each
	// channel's push_dead from its answer, last push time at. A crash may
	// lose it (a dead token is then found dead again at its next push);
	// unknown channel ids are ignored. Statements are bounded (at most a
	// few hundred ids each), so any number of results may be given.
	SetPushResults(ctx context.Context, results []PushResult, at time.Time) error
	// Enqueue stores cmd once and queues it for every channel, in one
	// transaction.
	Enqueue(ctx context.Context, cmd *CommandRecord, channelIDs []string) error
	// NextCommand hands out the next command of the channel and marks it
	// sent (a mark a crash may lose without harm: the command is then
	// handed out again, as a sent command never answered is; it is visible
	// to reads when NextCommand returns). Queued commands and ones sent without an answer (the delivery
	// was lost: a device answers one command at a time) are eligible after
	// any report; commands answered NotNow only after an Idle poll.
	// Expired commands are marked expired and skipped.
	// ErrNotFound when there is nothing to send, or when the channel is not
	// one of enrollment ref's (the MDM path is scoped to the authenticated
	// enrollment).
	NextCommand(ctx context.Context, ref, channelID string, afterIdle bool, now time.Time) (*QueuedCommand, error)
	// RecordResult stores a result for a command sent to channel channelID
	// of enrollment ref. Repeating an identical final result is not an
	// error (nothing is written); a final result (Acknowledged, Error,
	// CommandFormatError) followed by a different status gives
	// ErrConflict and writes nothing: the first one stands. A command
	// never queued for the channel, or a channel that is not ref's, gives
	// ErrNotFound.
	// It returns the command's request type. When inv is not nil and the
	// result is new, the inventory update inv gives for the request type is
	// applied to the channel's enrollment in the same transaction (one
	// durable write per answer).
	RecordResult(ctx context.Context, ref, channelID, uuid, status string, result []byte, now time.Time, inv InventoryFunc) (string, error)
	// RecordResultNext is RecordResult followed by NextCommand after a
	// report (afterIdle false) in the same transaction: the result, its
	// inventory and the next command's sent mark are one durable write. It
	// returns the command's request type and the next command, nil when
	// there is none. ErrNotFound and ErrConflict as RecordResult (then
	// nothing is written).
	//
	// When ack is not nil, the status is Acknowledged (new or an identical
	// repeat) and the command's request type (as queued) is InstallProfile
	// (or ProfileList with ack.List set), the profile engine's work
	// (ProfileResultStore.AcknowledgeProfileItem with ack.Verify() as its
	// verify command, or VerifyProfileItems with ack.List) runs in the same
	// transaction: the answer costs one durable commit, not two, and a
	// verifying ProfileList it queues is the next command handed out. Its
	// failure rolls back only its own writes (the result stays: it is
	// recorded again without them) and leaves ack.Done false, so that the caller can still do it
	// on its own; see ProfileAck.
	RecordResultNext(ctx context.Context, ref, channelID, uuid, status string, result []byte, now time.Time, inv InventoryFunc,
		ack *ProfileAck) (string, *QueuedCommand, error)
	// SetUndeliverable takes command uuid out of channel channelID's
	// queue (enrollment ref's): its status becomes QueueUndeliverable if it
	// is still claimable (queued, sent or NotNow) — a template command that
	// can never be rendered for the channel (ErrCannotRender), so that
	// NextCommand hands out the commands behind it. Durable before it
	// returns. ErrNotFound when no claimable row matches (answered, expired
	// or failed meanwhile; another enrollment's channel).
	SetUndeliverable(ctx context.Context, ref, channelID, uuid string, now time.Time) error
	QueuedCommands(ctx context.Context, channelID string, limit int) ([]QueuedCommand, error)
	// CommandSummaries is a channel's latest limit commands, newest
	// first, as a history view shows them: without Payload or Vars, and
	// with Result only when it is at most maxResult bytes (ResultSize
	// always set) — what one request reads stays bounded whatever the
	// devices answered (up to mdm.MaxResult each).
	CommandSummaries(ctx context.Context, channelID string, limit, maxResult int) ([]QueuedCommand, error)
	// ChannelCommand is command uuid as queued for one of enrollment
	// ref's channels (the newest, should two have it), with its full
	// Result and ResultSize; kind is that channel's kind. ErrNotFound
	// when none of ref's channels has it.
	ChannelCommand(ctx context.Context, ref, uuid string) (q *QueuedCommand, kind string, err error)
	// UpdateInventory merges one section into the enrollment's inventory and
	// refreshes the device fields DeviceInformation reports.
	UpdateInventory(ctx context.Context, ref, section string, data any, info *DeviceInfo, now time.Time) error
	// WaitingChannels returns pushable channels with commands queued (or
	// answered NotNow) since before waitingSince, last pushed before
	// pushedBefore: devices that did not come for their commands.
	WaitingChannels(ctx context.Context, waitingSince, pushedBefore time.Time, limit int) ([]Channel, error)
	// TargetChannels returns the device channels of enrolled enrollments
	// matching f, each once, with their platform and what a push needs,
	// for bulk commands (100,000 targets are one read of five columns a
	// row, not the whole channel).
	TargetChannels(ctx context.Context, f TargetFilter) ([]ChannelTarget, error)
	// EnqueueTargets queues one command for the targets TargetChannels
	// would return for f, without reading them: in one transaction it
	// counts the targets per enrollment platform, calls plan with the
	// counts, writes cmd (after plan returned: plan may complete it) and
	// one queue row for every target on a platform plan chose (one
	// INSERT … SELECT), and cmd.Audit. With k it is EnqueueOnce: k (its
	// Response set from plan's answer) is recorded in that transaction,
	// and when k.Principal already holds k.Key unexpired nothing is queued
	// and that record is returned. It returns the number of queue rows
	// written. f's lists hold at most TargetListMax ids together
	// (an error beyond). An error from plan is returned as it is, with
	// nothing written.
	EnqueueTargets(ctx context.Context, k *IdempotencyKey, cmd *CommandRecord, f TargetFilter, plan BulkPlan) (queued int, existing *IdempotencyKey, err error)
}

// BulkPlan decides a bulk command from its targets' count per enrollment
// platform (only platforms with targets appear; the map may be empty):
// the platforms it is queued for, and the answer an idempotency key
// records (JSON; ignored without a key). EnqueueTargets may call it more
// than once (a retried PostgreSQL transaction); the last call's decision
// is the one written.
type BulkPlan func(counts map[string]int) (platforms []string, answer []byte, err error)

// TargetListMax bounds the ids (users and enrollments together) of a
// TargetFilter given to EnqueueTargets: they are parameters of one
// statement (SQLite allows 32,766, PostgreSQL 65,535). Longer lists go
// through TargetChannels and Enqueue.
const TargetListMax = 10000

// TargetFilter selects enrollments for a bulk command: those of a tenant,
// of some users, or listed by id (Pomona's en_… or Apple's EnrollmentID).
// Several fields combine as a union.
type TargetFilter struct {
	TenantID      string
	UserIDs       []string
	EnrollmentIDs []string
}

// ChannelTarget is a device channel a bulk command goes to: its id, its
// enrollment's platform, and the channel's push fields (as in Channel).
type ChannelTarget struct {
	ChannelID string
	Platform  string
	PushToken []byte
	PushMagic string
	PushDead  bool
}

// PushChannel is the target as a Channel for a Pusher: only ID and the
// push fields are set.
func (t *ChannelTarget) PushChannel() Channel {
	return Channel{ID: t.ChannelID, PushToken: t.PushToken, PushMagic: t.PushMagic, PushDead: t.PushDead}
}
