package mdmservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// AppleEnrollmentBinder records Authenticate.
type AppleEnrollmentBinder interface {
	BindAppleEnrollment(ctx context.Context, id, appleEnrollmentID string, info store.DeviceInfo, now time.Time) error
}

// ChannelStore keeps an enrollment's channels.
type ChannelStore interface {
	PutChannel(ctx context.Context, c *store.Channel) error
	Channels(ctx context.Context, enrollmentRef string) ([]store.Channel, error)
	Channel(ctx context.Context, enrollmentRef, kind, enrollmentUserID string) (*store.Channel, error)
	TouchChannel(ctx context.Context, enrollmentRef, id string, now time.Time) error
}

// EnrollmentEnder ends an enrollment on CheckOut.
type EnrollmentEnder interface {
	EndEnrollment(ctx context.Context, id, reason string, now time.Time) error
}

// QueueStore is a channel's command queue.
type QueueStore interface {
	RecordResultNext(ctx context.Context, enrollmentRef, channelID, commandUUID, status string, raw []byte, now time.Time, inv store.InventoryFunc,
		ack *store.ProfileAck) (string, *store.QueuedCommand, error)
	NextCommand(ctx context.Context, enrollmentRef, channelID string, afterIdle bool, now time.Time) (*store.QueuedCommand, error)
	SetUndeliverable(ctx context.Context, enrollmentRef, channelID, commandUUID string, now time.Time) error
}

// CoreStore is everything Core writes and the reads that go with them.
type CoreStore interface {
	AppleEnrollmentBinder
	ChannelStore
	EnrollmentEnder
	QueueStore
}

// Core is the one implementation of the channels: it assumes the request
// is authenticated, bound and authorized (the decorators around it) and
// does the message's work on the store.
type Core struct {
	Store CoreStore
	// Tokens answers GetToken; nil: NoTokens (every TokenServiceType
	// refused).
	Tokens TokenService
	// AfterResult, when set, is told of every result the queue knows
	// (see ResultHook).
	AfterResult ResultHook
	// ProfileAck, when set, is asked for every Acknowledged result on a
	// device channel (see ProfileAckHook).
	ProfileAck ProfileAckHook
	// Render turns a template command (store.CommandRecord.Render set:
	// a profile rendered per device at delivery) into the command plist
	// for its channel (profiles.Deliverer.Render). Every command handed
	// out goes through deliver, which calls it; nil: a template command
	// is an error (never handed out as it is stored). An error wrapping
	// store.ErrCannotRender is permanent for q: deliver fails q
	// (Undeliverable, then store SetUndeliverable) and hands out the next
	// command; any other error is answered 5xx and the device retries.
	Render func(ctx context.Context, q *store.QueuedCommand) ([]byte, error)
	// Undeliverable, when set, is told of a template command that can
	// never be rendered for its channel (err wraps store.ErrCannotRender),
	// before the queue row is failed: the profile engine fails that
	// device's item with the reason and schedules its bounded retry.
	Undeliverable UndeliverableHook
	Log           *slog.Logger
	Now           func() time.Time
}

// ProfileAckHook returns, for an Acknowledged result on enr's device
// channel, the profile engine's work to do in the result's own
// transaction (store.ProfileAck: applied only when the command, as
// queued, is an InstallProfile, or a ProfileList when its List is set)
// and what to do once that is durable (after: events, reconciler marks;
// may be nil), or a nil ack. When the store reports it Done, after runs
// and the AfterResult hook is not called for that result (it would do
// the same work again, in a second durable commit); when not, AfterResult
// runs as without it — so a failure in the result's transaction loses
// neither the result nor the profile engine's work.
type ProfileAckHook func(ctx context.Context, enr *store.Enrollment, res *mdm.Result) (ack *store.ProfileAck, after func(context.Context, *store.ProfileAck))

// ResultHook follows a device's result inside its request: it runs after
// the result is durable and before the device is answered, with the
// command's request type as queued (not as the device claims it) and the
// decoded result, identical repeats included (a status contradicting the
// recorded one is not the command's result: no hook). It reports whether
// it queued a command for channelID; the device is then handed the
// channel's next command with this answer (a profile install's verifying ProfileList
// comes without a push and a poll of its own).
type ResultHook func(ctx context.Context, enr *store.Enrollment, channelID, requestType string, res *mdm.Result) (queued bool)

// UndeliverableHook follows a template command q that Render can never
// render for enr's channel (err wraps store.ErrCannotRender, and says
// why), in the device's request and before the queue row is taken out of
// the way (so that a crash between the two leaves the row to fail again
// on the next poll, never an item waiting for a command that is gone).
type UndeliverableHook func(ctx context.Context, enr *store.Enrollment, q *store.QueuedCommand, err error)

// maxUndeliverable bounds the template commands one request fails before
// it answers 5xx (the device asks again and the next request goes on):
// each one costs a render and two writes.
const maxUndeliverable = 16

var _ Service = (*Core)(nil)

func (c *Core) now() time.Time { return c.Now().UTC().Truncate(time.Microsecond) }

// Authenticate binds Apple's EnrollmentID to the device; a second
// enrollment claiming the same EnrollmentID is Forbidden.
func (c *Core) Authenticate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	enr := &r.Device.Enrollment
	err := c.Store.BindAppleEnrollment(ctx, enr.ID, m.EnrollmentID, store.DeviceInfo{OSVersion: m.OSVersion, BuildVersion: m.BuildVersion,
		ProductName: m.ProductName, DeviceName: m.DeviceName, Model: m.Model, ModelName: m.ModelName}, c.now())
	if errors.Is(err, store.ErrConflict) {
		return nil, problem.New(problem.Forbidden, "%s", err.Error())
	}
	if err != nil {
		return nil, err
	}
	enr.AppleEnrollmentID = m.EnrollmentID
	return &Answer{Reason: "authenticated"}, nil
}

// TokenUpdate stores the channel. The channel belongs to the
// authenticated enrollment; the device's EnrollmentUserID only tells its
// user channels apart. A new channel gets a random id (an existing one
// keeps its own).
func (c *Core) TokenUpdate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	enr := &r.Device.Enrollment
	if err := c.userChannelAllowed(ctx, r, m.Identity); err != nil {
		return nil, err
	}
	now := c.now()
	ch := &store.Channel{ID: newChannelID(), DeviceID: enr.ID, Kind: m.Kind(), EnrollmentUserID: m.EnrollmentUserID,
		UserShortName: m.UserShortName, UserLongName: m.UserLongName, PushToken: m.Token, PushMagic: m.PushMagic,
		CreatedAt: now, UpdatedAt: now, LastSeenAt: now}
	if err := c.Store.PutChannel(ctx, ch); err != nil {
		return nil, err
	}
	return &Answer{Reason: "token updated", ChannelID: ch.ID}, nil
}

// CheckOut on the device channel ends the enrollment (its identity
// certificates and tokens are revoked with it).
func (c *Core) CheckOut(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	enr := &r.Device.Enrollment
	if m.Kind() == mdm.DeviceChannel {
		now := c.now()
		if err := c.Store.EndEnrollment(ctx, enr.ID, "the device checked out", now); err != nil {
			return nil, err
		}
		enr.Status, enr.UnenrolledAt = store.EnrollmentUnenrolled, now
	}
	return &Answer{Reason: "checked out"}, nil
}

// UserAuthenticate is forbidden for user enrollments; 410 Gone tells the
// Mac not to ask again.
func (c *Core) UserAuthenticate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return nil, problem.New(problem.Gone, "UserAuthenticate is not used with user enrollments")
}

// GetToken is answered by the TokenService.
func (c *Core) GetToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	t := c.Tokens
	if t == nil {
		t = NoTokens{}
	}
	return t.GetToken(ctx, r, m)
}

// DeclarativeManagement is not served yet (the enrollment's commands
// refuse it too).
func (c *Core) DeclarativeManagement(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return nil, problem.New(problem.Invalid, "declarative management is not enabled on this server")
}

// BootstrapToken: user enrollments have no bootstrap token.
func (c *Core) BootstrapToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return nil, problem.New(problem.Invalid, "%s is not available for user enrollments", m.MessageType)
}

// MaxUserChannels bounds the user channels of one enrollment. A user
// enrollment manages the person who enrolled: an iPhone or iPad has only
// the device channel, a Mac the device channel and that person's user
// channel (Apple, "User Enrollment into MDM": on macOS only the enrolling
// user is managed). Without the bound, each TokenUpdate with a new
// EnrollmentUserID stored one more channel — a command queue and a push
// target — for as long as the device kept sending them.
const MaxUserChannels = 1

// userChannelAllowed refuses a TokenUpdate that would add a user channel
// where the enrollment may have none (iOS) or has its one already (macOS):
// 403, the device keeps its existing channels. A repeated TokenUpdate of
// an existing channel is always allowed. Two concurrent first TokenUpdates
// with different EnrollmentUserIDs can both pass this check (one-time, at
// most the requests in flight); every later new one is refused.
func (c *Core) userChannelAllowed(ctx context.Context, r *Request, id mdm.Identity) error {
	if id.Kind() != mdm.UserChannel {
		return nil
	}
	enr := &r.Device.Enrollment
	if enr.Platform == "iOS" {
		return problem.New(problem.Forbidden, "an iPhone or iPad user enrollment has no user channel")
	}
	if ch := r.Device.Channel; ch != nil && ch.Kind == mdm.UserChannel && ch.EnrollmentUserID == id.EnrollmentUserID {
		return nil
	}
	chs, err := c.Store.Channels(ctx, enr.ID)
	if err != nil {
		return err
	}
	users := 0
	for _, ch := range chs {
		if ch.Kind != mdm.UserChannel {
			continue
		}
		if ch.EnrollmentUserID == id.EnrollmentUserID {
			return nil
		}
		users++
	}
	if users >= MaxUserChannels {
		return problem.New(problem.Forbidden, "this enrollment has its user channel already (at most %d): a user enrollment manages only the user who enrolled", MaxUserChannels)
	}
	return nil
}

// lastSeenEvery limits last-seen writes to one per channel per minute.
const lastSeenEvery = time.Minute

// CommandAndReportResults records a result (if any) and hands out the
// next queued command. Only the sender's own channels can be found, and
// every read and write is scoped to its enrollment again in the store.
func (c *Core) CommandAndReportResults(ctx context.Context, r *Request, res *mdm.Result) (*Answer, error) {
	enr := &r.Device.Enrollment
	ch := r.Device.Channel
	if ch == nil {
		var err error
		ch, err = c.Store.Channel(ctx, enr.ID, res.Kind(), res.EnrollmentUserID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, problem.New(problem.Invalid, "no TokenUpdate has been received for this channel")
		}
		if err != nil {
			return nil, err
		}
	}
	answer := &Answer{ChannelID: ch.ID}
	now := c.now()
	if now.Sub(ch.LastSeenAt) > lastSeenEvery {
		c.Store.TouchChannel(ctx, enr.ID, ch.ID, now)
	}
	afterIdle := res.Status == mdm.Idle
	if !afterIdle {
		// What the answer reveals goes into the inventory in the same
		// transaction as the result.
		inv := func(rt string) (string, any, *store.DeviceInfo, bool) {
			section, data, f, ok := mdm.InventoryOf(rt, res.Doc)
			if !ok {
				return "", nil, nil, false
			}
			var info *store.DeviceInfo
			if f != nil {
				info = &store.DeviceInfo{OSVersion: f.OSVersion, BuildVersion: f.BuildVersion, DeviceName: f.DeviceName, Model: f.Model, ModelName: f.ModelName}
			}
			return section, data, info, true
		}
		// The result, its inventory and the next command's sent mark go
		// in one transaction: one durable write per answer.
		var ack *store.ProfileAck
		var after func(context.Context, *store.ProfileAck)
		if c.ProfileAck != nil && res.Status == mdm.Acknowledged && res.Kind() == mdm.DeviceChannel {
			ack, after = c.ProfileAck(ctx, enr, res)
		}
		rt, q, err := c.Store.RecordResultNext(ctx, enr.ID, ch.ID, res.CommandUUID, res.Status, res.Raw, now, inv, ack)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Not 400: a device holding such a result would resend it on
			// every poll. Acknowledge it and hand out the next command.
			c.Log.Warn("MDM result for a command never queued for this channel: acknowledged and dropped",
				"device", enr.ID, "channel", ch.ID, "command_uuid", res.CommandUUID, "status", res.Status, "request_type", res.RequestType)
			answer.UnknownResult = true
		case errors.Is(err, store.ErrConflict):
			// A status contradicting the one recorded (the first stands):
			// not the command's result, so no hook and no result event;
			// answered like an unknown one, for the same reason.
			c.Log.Warn("MDM result contradicting the command's recorded result: acknowledged and dropped",
				"device", enr.ID, "channel", ch.ID, "command_uuid", res.CommandUUID, "status", res.Status, "err", err)
			answer.UnknownResult = true
		case err != nil:
			return nil, err
		default:
			answer.RequestType = rt
			if ack != nil && ack.Done {
				// The profile items moved with the result (and a verifying
				// ProfileList an install queued is q, or behind q).
				if after != nil {
					after(ctx, ack)
				}
				return c.deliver(ctx, enr, answer, q, false)
			}
			if c.AfterResult != nil && c.AfterResult(ctx, enr, ch.ID, rt, res) && q == nil {
				if q, err = c.Store.NextCommand(ctx, enr.ID, ch.ID, false, now); errors.Is(err, store.ErrNotFound) {
					q, err = nil, nil
				}
				if err != nil {
					return nil, err
				}
			}
			return c.deliver(ctx, enr, answer, q, false)
		}
	}
	if afterIdle && r.Device.Channel != nil && !r.Device.CommandWaiting {
		// The request's one store read (DeviceRequest's CommandWaiting)
		// found nothing an Idle poll would be handed: NextCommand, which
		// reads the full row without a look first, is not asked.
		answer.Reason = "no command"
		return answer, nil
	}
	q, err := c.Store.NextCommand(ctx, enr.ID, ch.ID, afterIdle, now)
	if errors.Is(err, store.ErrNotFound) {
		q, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	return c.deliver(ctx, enr, answer, q, afterIdle)
}

// deliver puts command q (nil: none) into the answer: as stored, or
// rendered for this channel when it is a template (Render). A template
// whose render fails transiently is an error (5xx: the device asks again;
// its queue row stays sent, so it is handed out again); one that can
// never render for this channel (store.ErrCannotRender) is failed
// (Undeliverable, SetUndeliverable) and the channel's next command is
// handed out instead (NextCommand as after an Idle when afterIdle), so
// that it does not block the queue. A template's stored bytes are never
// sent.
func (c *Core) deliver(ctx context.Context, enr *store.Enrollment, a *Answer, q *store.QueuedCommand, afterIdle bool) (*Answer, error) {
	for failed := 0; ; failed++ {
		if q == nil {
			a.Reason = "no command"
			return a, nil
		}
		body := q.Payload
		if q.Render == store.RenderReady {
			a.Body, a.ContentType, a.Reason = body, "application/xml; charset=utf-8", "command "+q.UUID
			return a, nil
		}
		var err error
		if c.Render == nil {
			err = errors.New("no renderer for template commands")
		} else {
			body, err = c.Render(ctx, q)
		}
		if err == nil {
			a.Body, a.ContentType, a.Reason = body, "application/xml; charset=utf-8", "command "+q.UUID
			return a, nil
		}
		if !errors.Is(err, store.ErrCannotRender) || failed >= maxUndeliverable {
			c.Log.Error("MDM command could not be rendered for the device: answered 5xx, the device retries",
				"device", enr.ID, "channel", q.ChannelID, "command_uuid", q.UUID, "request_type", q.RequestType, "render", q.Render, "err", err)
			return nil, fmt.Errorf("render command %s: %w", q.UUID, err)
		}
		// Not a server fault and not curable by asking again: this
		// device's item fails (the reason is the admin's to see), the row
		// leaves the queue, the next command goes out.
		c.Log.Warn("MDM command can never be rendered for this device: failed and taken out of the queue, the next command is handed out",
			"device", enr.ID, "channel", q.ChannelID, "command_uuid", q.UUID, "request_type", q.RequestType, "render", q.Render, "err", err)
		if c.Undeliverable != nil {
			c.Undeliverable(ctx, enr, q, err)
		}
		now := c.now()
		if err := c.Store.SetUndeliverable(ctx, enr.ID, q.ChannelID, q.UUID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err // ErrNotFound: answered or failed meanwhile (a concurrent request)
		}
		if q, err = c.Store.NextCommand(ctx, enr.ID, q.ChannelID, afterIdle, now); errors.Is(err, store.ErrNotFound) {
			q, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// newChannelID names a new channel: random, so that nothing a device sends
// can name (or collide with) a channel.
func newChannelID() string {
	t, _ := opaquetoken.New()
	return "ch_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(t))[:24]
}
