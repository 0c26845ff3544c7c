// Package mdmservice runs the MDM check-in and command channels of
// account-driven user enrollments, and queues commands for them.
//
// The channel is built like a pipe of small parts (docs/architecture.md,
// "One check-in's path"): Channel authenticates a request's signature,
// decodes it and resolves its sender once into a Device, then hands the
// message to a Service — a chain of decorators (Events → CertAuth → Bearer)
// around Core, the one implementation that reads and writes the store.
// Every part speaks the same interfaces (CheckinService, CommandService),
// so a new message (declarative management, GetToken) is one more method
// or one more implementation, not a new branch in a switch.
//
// Failures are *problem.Error values (Kind, Apple's code where Apple
// defines one, the WWW-Authenticate challenge); http/mdmhttp renders them,
// the only place that knows HTTP.
package mdmservice

import (
	"context"
	"crypto/x509"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// Request is one device request on the check-in or the command channel,
// as the transport received it, plus what Channel resolved once for all
// the parts downstream.
type Request struct {
	Body          []byte
	Signature     string            // the Mdm-Signature header (base64 detached CMS)
	ClientCert    *x509.Certificate // from TLS or a trusted proxy's header, if any
	Authorization string            // the Authorization header, as sent

	// Bearer is the access token of Authorization ("Bearer <token>"),
	// parsed once by Channel: "" when the header is absent or malformed.
	Bearer string
	// Device is the sender, resolved once by Channel before any Service
	// method runs; never nil inside a Service.
	Device *Device
}

// Device is the sender of one request: the identity certificate that
// signed it and the enrollment (Pomona's device) that certificate was
// issued to. Everything downstream of Channel uses this value; nobody
// re-derives an id.
//
// On the command channel (an Idle poll or a result) Channel reads only
// the fields store.DeviceRequest lists for DeviceRequestQuery.Idle — what
// CertAuth, Bearer and Core decide on, and what a result's hooks
// (ResultHook, ProfileAckHook) and events (Events: the device, its
// tenant, user, platform and EnrollmentID) use; the rest of IdentityCert,
// Enrollment, User and Channel is zero there (a part that needs more on
// the command channel reads the record). Check-ins get the full rows.
type Device struct {
	// Certificate is the verified identity certificate.
	Certificate  *x509.Certificate
	IdentityCert store.IdentityCert
	// Enrollment is Pomona's record of the device: Enrollment.ID is the
	// device id; Enrollment.AppleEnrollmentID is Apple's EnrollmentID once
	// the device authenticated.
	Enrollment store.Enrollment
	// User is the enrollment's owner, AccessToken the row of the request's
	// bearer, Channel the stored channel the message speaks for: read with
	// the rest in one store round trip; nil when they do not exist or the
	// request was resolved piece by piece (then whoever needs one reads it).
	User        *store.User
	AccessToken *store.AccessToken
	Channel     *store.Channel
	// CommandWaiting, read with Channel, reports that Channel has a command
	// an Idle poll would be handed; an Idle poll without one is answered
	// with no further store read. False when Channel is nil.
	CommandWaiting bool
}

// DeviceID is Pomona's id of the device (the enrollment row).
func (d *Device) DeviceID() string { return d.Enrollment.ID }

// Answer is what a successful request gets back.
type Answer struct {
	// Body is the answer's payload (a command plist on the command
	// channel); empty for a plain acknowledgement.
	Body        []byte
	ContentType string
	// Reason is for the log only.
	Reason string
	// ChannelID is Pomona's id of the channel the request concerned
	// (TokenUpdate, command channel), for events.
	ChannelID string
	// RequestType is the type of the command whose result was recorded;
	// UnknownResult says the result named a command never queued for the
	// channel (acknowledged and dropped).
	RequestType   string
	UnknownResult bool
}

// CheckinService answers check-in messages, one method per MessageType
// (Apple, "Check-in":
// https://developer.apple.com/documentation/devicemanagement/check-in).
// m.MessageType matches the method. Errors are *problem.Error values or
// internal failures.
type CheckinService interface {
	// Authenticate binds Apple's EnrollmentID to the device
	// (https://developer.apple.com/documentation/devicemanagement/authenticaterequest).
	Authenticate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error)
	// TokenUpdate stores a channel's push token and magic
	// (https://developer.apple.com/documentation/devicemanagement/tokenupdaterequest).
	TokenUpdate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error)
	// CheckOut ends the enrollment (device channel) when the device
	// leaves management
	// (https://developer.apple.com/documentation/devicemanagement/checkoutrequest).
	CheckOut(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error)
	// UserAuthenticate is a Mac's network-user sign-in
	// (https://developer.apple.com/documentation/devicemanagement/userauthenticaterequest).
	UserAuthenticate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error)
	// GetToken asks for a token of a service (TokenServiceType)
	// (https://developer.apple.com/documentation/devicemanagement/gettokenrequest).
	GetToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error)
	// DeclarativeManagement fetches declarations or sends status
	// (https://developer.apple.com/documentation/devicemanagement/declarativemanagementrequest).
	DeclarativeManagement(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error)
	// BootstrapToken answers GetBootstrapToken and SetBootstrapToken
	// (https://developer.apple.com/documentation/devicemanagement/getbootstraptokenrequest).
	BootstrapToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error)
}

// CommandService answers the command channel: it records the result the
// device reports (if any) and hands out the next queued command (Apple,
// "Sending MDM commands to a device":
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device).
// An answer with an empty Body tells the device there is nothing to do.
type CommandService interface {
	CommandAndReportResults(ctx context.Context, r *Request, res *mdm.Result) (*Answer, error)
}

// Service is both channels; every decorator implements it.
type Service interface {
	CheckinService
	CommandService
}

// Channel is the front door the transport calls: it verifies who signed a
// request, decodes it, resolves its sender once (Identity.Resolve), checks
// the push topic of check-ins, and dispatches to Service.
type Channel struct {
	Identity *Identity
	Topic    *TopicCache
	Service  Service
}

// Admit says, before the body is read, whether the request claims an
// identity of Pomona's CA (Identity.Admit). Errors: Forbidden.
func (c *Channel) Admit(r *Request) error { return c.Identity.Admit(r) }

// Checkin answers a check-in (PUT to the CheckInURL of the enrollment
// profile's MDM payload).
func (c *Channel) Checkin(ctx context.Context, r *Request) (*Answer, error) {
	cert, err := c.Identity.Verify(ctx, r)
	if err != nil {
		return nil, err
	}
	msg, derr := mdm.DecodeCheckin(r.Body)
	q := store.DeviceRequestQuery{}
	if derr == nil && msg.MessageType == mdm.TokenUpdate {
		q.ChannelKind, q.EnrollmentUserID = msg.Kind(), msg.EnrollmentUserID
	}
	if err := c.resolve(ctx, r, cert, q); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, problem.New(problem.Invalid, "%s", derr.Error())
	}
	if msg.Topic != "" {
		if err := c.Topic.Check(ctx, msg.Topic); err != nil {
			return nil, err
		}
	}
	switch msg.MessageType {
	case mdm.Authenticate:
		if msg.Kind() != mdm.DeviceChannel {
			return nil, problem.New(problem.Invalid, "Authenticate comes on the device channel")
		}
		return c.Service.Authenticate(ctx, r, msg)
	case mdm.TokenUpdate:
		return c.Service.TokenUpdate(ctx, r, msg)
	case mdm.CheckOut:
		return c.Service.CheckOut(ctx, r, msg)
	case mdm.UserAuthenticate:
		return c.Service.UserAuthenticate(ctx, r, msg)
	case mdm.GetBootstrapToken, mdm.SetBootstrapToken:
		return c.Service.BootstrapToken(ctx, r, msg)
	case mdm.GetToken:
		return c.Service.GetToken(ctx, r, msg)
	case mdm.DeclarativeManagement:
		return c.Service.DeclarativeManagement(ctx, r, msg)
	}
	return nil, problem.New(problem.Invalid, "unknown MessageType %s", msg.MessageType)
}

// Command answers a command poll or result (PUT to the ServerURL).
func (c *Channel) Command(ctx context.Context, r *Request) (*Answer, error) {
	cert, err := c.Identity.Verify(ctx, r)
	if err != nil {
		return nil, err
	}
	res, derr := mdm.DecodeResult(r.Body)
	q := store.DeviceRequestQuery{}
	if derr == nil {
		q.ChannelKind, q.EnrollmentUserID = res.Kind(), res.EnrollmentUserID
		// Every command-channel request reads only what deciding on it,
		// its hooks and its events take (Device): a result read the
		// enrollment's and user's other 43 columns for nothing (two of a
		// profile wave's three requests; docs/benchmarks.md, "Session 12
		// — wave4").
		q.Idle = true
		// Only an Idle poll's answer looks at CommandWaiting
		// (Core.CommandAndReportResults): a result's sender is then
		// answered from what the store remembers, with no statement.
		q.NoWaiting = res.Status != mdm.Idle
	}
	if err := c.resolve(ctx, r, cert, q); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, problem.New(problem.Invalid, "%s", derr.Error())
	}
	return c.Service.CommandAndReportResults(ctx, r, res)
}

// resolve parses the bearer and resolves the sender, once per request.
func (c *Channel) resolve(ctx context.Context, r *Request, cert *x509.Certificate, q store.DeviceRequestQuery) error {
	if tok, err := opaquetoken.FromHeader(r.Authorization); err == nil {
		r.Bearer = tok
		q.TokenHash = opaquetoken.Hash(tok)
	}
	d, err := c.Identity.Resolve(ctx, cert, q)
	if err != nil {
		return err
	}
	r.Device = d
	return nil
}
