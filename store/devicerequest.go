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
