package store

import "context"

// DeviceRequestQuery names what one MDM request (check-in or command
// poll) needs to know about its sender.
type DeviceRequestQuery struct {
	// Serial is the identity certificate's serial (lower-case hex).
	Serial string
	// TokenHash is the hash of the bearer the request carried (nil: none).
	TokenHash []byte
	// ChannelKind and EnrollmentUserID name the channel the message speaks
	// for ("" kind: no channel wanted).
	ChannelKind      string
	EnrollmentUserID string
	// Idle asks for the columns the command channel decides on and no
	// more (DeviceRequest lists them): an idle poll with nothing queued
	// is answered from this one read, and every column costs each driver
	// a name, a type and a value per statement (docs/benchmarks.md,
	// "Session 8 — idle"). Named for the Idle poll it was made for; the
	// MDM channel asks for it on every command-channel request, results
	// too (their hooks and webhook events use only these fields:
	// "Session 12 — wave4").
	Idle bool
	// NoWaiting: the caller does not look at CommandWaiting (a command
	// result: only an Idle poll's answer depends on it), which is then
	// false. With Idle, a store that remembers the rest of the read
	// (sqlstore's authCache) answers such a request without the queue
	// look.
	NoWaiting bool
}

// DeviceRequest is the sender of one MDM request, read at once: its
// identity certificate, the enrollment that certificate was issued to, the
// enrollment's user, and when asked for, the access token and the channel.
//
// The rows are what the MDM channel decides on, not whole records: the
// enrollment's MachineInfo and Inventory (blobs that grow with the
// device's answers) are nil, and the user carries no credentials
// (PasswordHash, TOTPSecret, TOTPConfirmedAt, TOTPLastStep are zero).
// Whoever needs them reads Enrollment or User.
//
// With DeviceRequestQuery.Idle only these fields are set, every other one
// is zero (a reader that needs more reads the record):
//   - IdentityCert: Serial, DeviceID, RevokedAt
//   - Enrollment: ID, TenantID, UserID, Platform, Status, AppleEnrollmentID
//   - User: ID, Enabled, TokensNotBefore
//   - AccessToken (when found): every field
//   - Channel (when found): ID, DeviceID, Kind, EnrollmentUserID, LastSeenAt
//   - CommandWaiting
//
// That is what authenticating and binding a command-channel request
// (revocation, the enrollment's status and EnrollmentID, the bearer's
// grant and its owner), answering it (the channel, its last-seen time,
// whether a command waits) and a result's hooks and events (the device,
// its tenant, user, platform and EnrollmentID) read.
type DeviceRequest struct {
	IdentityCert IdentityCert
	Enrollment   Enrollment
	// User is the enrollment's owner (without credentials).
	User User
	// AccessToken is the token of DeviceRequestQuery.TokenHash; nil when
	// none was asked for or no such token exists.
	AccessToken *AccessToken
	// Channel is the enrollment's channel of the asked kind and
	// EnrollmentUserID; nil when none was asked for or it does not exist
	// (yet).
	Channel *Channel
	// CommandWaiting reports that Channel has a command an Idle poll would
	// be handed (queue status queued, sent or NotNow), read in the same
	// statement: an idle poll that finds none needs no second read. False
	// when Channel is nil.
	CommandWaiting bool
}

// DeviceRequestStore resolves an MDM request's sender in one round trip:
// the hot path of every check-in and command poll.
type DeviceRequestStore interface {
	// DeviceRequest returns ErrNotFound when no identity certificate has
	// the serial or its enrollment or user no longer exists (the caller
	// then reads the pieces one by one to say which).
	DeviceRequest(ctx context.Context, q DeviceRequestQuery) (*DeviceRequest, error)
}
