package store

import (
	"context"
	"time"
)

// Channel is a device channel (ID = EnrollmentID) or a Mac user channel
// (ID = EnrollmentID/EnrollmentUserID) with its push token.
type Channel struct {
	ID            string
	EnrollmentRef string // Enrollment.ID
	Kind          string // device or user
	UserShortName string
	UserLongName  string
	PushToken     []byte
	PushMagic     string
	PushDead      bool
	LastPushAt    time.Time
	LastSeenAt    time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Queue statuses. Results use Apple's words.
const (
	QueueQueued             = "queued"
	QueueSent               = "sent"
	QueueAcknowledged       = "Acknowledged"
	QueueError              = "Error"
	QueueCommandFormatError = "CommandFormatError"
	QueueNotNow             = "NotNow"
	QueueExpired            = "expired"
)

// Command is a command to send (Payload is the command plist).
type Command struct {
	UUID        string
	RequestType string
	Payload     []byte
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never
	CreatedBy   string
}

// QueuedCommand is a command in one channel's queue.
type QueuedCommand struct {
	Command
	ChannelID string
	Status    string
	Result    []byte
	SentAt    time.Time
	UpdatedAt time.Time
}

// DeviceInfo is what Authenticate tells about the device.
// InventoryFunc says what a result adds to the inventory, given the
// command's request type (ok false: nothing).
type InventoryFunc func(requestType string) (section string, data any, info *DeviceInfo, ok bool)

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
	// SetEnrollmentStatus changes the status (unenrolled keeps history).
	SetEnrollmentStatus(ctx context.Context, ref, status string, now time.Time) error
	PutChannel(ctx context.Context, c *Channel) error
	Channel(ctx context.Context, id string) (*Channel, error)
	Channels(ctx context.Context, ref string) ([]Channel, error)
	TouchChannel(ctx context.Context, id string, now time.Time) error
	SetPushResult(ctx context.Context, id string, dead bool, at time.Time) error
	// Enqueue stores cmd once and queues it for every channel, in one
	// transaction.
	Enqueue(ctx context.Context, cmd *Command, channelIDs []string) error
	// NextCommand hands out the next command of the channel and marks it
	// sent. Queued commands and ones sent without an answer (the delivery
	// was lost: a device answers one command at a time) are eligible after
	// any report; commands answered NotNow only after an Idle poll.
	// Expired commands are marked expired and skipped.
	// ErrNotFound when there is nothing to send.
	NextCommand(ctx context.Context, channelID string, afterIdle bool, now time.Time) (*QueuedCommand, error)
	// RecordResult stores a result for a command sent to the channel.
	// Repeating an identical final result is not an error. A command never
	// queued for the channel gives ErrNotFound.
	// It returns the command's request type. When inv is not nil and the
	// result is new, the inventory update inv gives for the request type is
	// applied to the channel's enrollment in the same transaction (one
	// durable write per answer).
	RecordResult(ctx context.Context, channelID, uuid, status string, result []byte, now time.Time, inv InventoryFunc) (string, error)
	QueuedCommands(ctx context.Context, channelID string, limit int) ([]QueuedCommand, error)
	// UpdateInventory merges one section into the enrollment's inventory and
	// refreshes the device fields DeviceInformation reports.
	UpdateInventory(ctx context.Context, ref, section string, data any, info *DeviceInfo, now time.Time) error
	// WaitingChannels returns pushable channels with commands queued (or
	// answered NotNow) since before waitingSince, last pushed before
	// pushedBefore: devices that did not come for their commands.
	WaitingChannels(ctx context.Context, waitingSince, pushedBefore time.Time, limit int) ([]Channel, error)
	// TargetChannels returns the device channels of enrolled enrollments
	// matching f, with their platform, for bulk commands.
	TargetChannels(ctx context.Context, f TargetFilter) ([]ChannelTarget, error)
}

// TargetFilter selects enrollments for a bulk command: those of a tenant,
// of some users, or listed by id (Pomona's en_… or Apple's EnrollmentID).
// Several fields combine as a union.
type TargetFilter struct {
	TenantID      string
	UserIDs       []string
	EnrollmentIDs []string
}

// ChannelTarget is a device channel and its platform.
type ChannelTarget struct {
	ChannelID string
	Platform  string
	Channel   Channel
}
