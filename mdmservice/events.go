package mdmservice

import (
	"context"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

// Event is something that happened on a channel.
type Event struct {
	Kind string // authenticate, token-update, checkout, result, unknown-result, identity-expired
	// Enrollment is the device; on a result or unknown-result only the
	// fields store.DeviceRequest lists for DeviceRequestQuery.Idle are set
	// (Device says why).
	Enrollment *store.Enrollment
	// ChannelID is Pomona's id of the channel (token-update, result), or
	// the channel's kind when no stored channel is concerned
	// (authenticate, checkout).
	ChannelID   string
	CommandUUID string
	Status      string
	RequestType string
	Result      []byte
}

// Events tells Emit what succeeded (webhooks, inventory, metrics): it
// wraps the service and emits after the inner call returns without error,
// with the device as the inner services left it.
type Events struct {
	Next Service
	Emit func(ctx context.Context, e Event)
}

var _ Service = Events{}

func (e Events) Authenticate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	a, err := e.Next.Authenticate(ctx, r, m)
	if err == nil {
		e.Emit(ctx, Event{Kind: "authenticate", Enrollment: &r.Device.Enrollment, ChannelID: m.Kind()})
	}
	return a, err
}

func (e Events) TokenUpdate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	a, err := e.Next.TokenUpdate(ctx, r, m)
	if err == nil {
		e.Emit(ctx, Event{Kind: "token-update", Enrollment: &r.Device.Enrollment, ChannelID: a.ChannelID})
	}
	return a, err
}

func (e Events) CheckOut(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	a, err := e.Next.CheckOut(ctx, r, m)
	if err == nil {
		e.Emit(ctx, Event{Kind: "checkout", Enrollment: &r.Device.Enrollment, ChannelID: m.Kind()})
	}
	return a, err
}

func (e Events) UserAuthenticate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return e.Next.UserAuthenticate(ctx, r, m)
}

func (e Events) GetToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return e.Next.GetToken(ctx, r, m)
}

func (e Events) DeclarativeManagement(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return e.Next.DeclarativeManagement(ctx, r, m)
}

func (e Events) BootstrapToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return e.Next.BootstrapToken(ctx, r, m)
}

func (e Events) CommandAndReportResults(ctx context.Context, r *Request, res *mdm.Result) (*Answer, error) {
	a, err := e.Next.CommandAndReportResults(ctx, r, res)
	if err != nil || res.Status == mdm.Idle {
		return a, err
	}
	switch {
	case a.UnknownResult:
		e.Emit(ctx, Event{Kind: "unknown-result", Enrollment: &r.Device.Enrollment, ChannelID: a.ChannelID, CommandUUID: res.CommandUUID,
			Status: res.Status, RequestType: res.RequestType})
	default:
		e.Emit(ctx, Event{Kind: "result", Enrollment: &r.Device.Enrollment, ChannelID: a.ChannelID, CommandUUID: res.CommandUUID,
			Status: res.Status, RequestType: a.RequestType, Result: res.Raw})
	}
	return a, err
}
