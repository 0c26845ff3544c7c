package mdmservice

import (
	"context"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/problem"
)

// Metrics counts every message that reached the service by message and
// outcome: Observe(message, outcome) with message the check-in's
// MessageType, "Idle" for a command poll or "Result" for a command result,
// and outcome "ok", the error's code (problem.Error.Code: "invalid",
// "unauthenticated", "forbidden", "com.apple.unrecognized.device", …) or
// "error" for the server's own failures.
type Metrics struct {
	Next    Service
	Observe func(message, outcome string)
}

var _ Service = Metrics{}

func (m Metrics) observe(message string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
		if pe, ok := problem.As(err); ok {
			outcome = pe.Code
			if outcome == "" {
				outcome = pe.Kind.String()
			}
		}
	}
	m.Observe(message, outcome)
}

// checkin calls next, one of Next's check-in methods, and observes its
// outcome under the check-in's MessageType.
func (m Metrics) checkin(next func(context.Context, *Request, *mdm.Checkin) (*Answer, error), ctx context.Context, r *Request, c *mdm.Checkin) (*Answer, error) {
	a, err := next(ctx, r, c)
	m.observe(c.MessageType, err)
	return a, err
}

func (m Metrics) Authenticate(ctx context.Context, r *Request, c *mdm.Checkin) (*Answer, error) {
	return m.checkin(m.Next.Authenticate, ctx, r, c)
}

func (m Metrics) TokenUpdate(ctx context.Context, r *Request, c *mdm.Checkin) (*Answer, error) {
	return m.checkin(m.Next.TokenUpdate, ctx, r, c)
}

func (m Metrics) CheckOut(ctx context.Context, r *Request, c *mdm.Checkin) (*Answer, error) {
	return m.checkin(m.Next.CheckOut, ctx, r, c)
}

func (m Metrics) UserAuthenticate(ctx context.Context, r *Request, c *mdm.Checkin) (*Answer, error) {
	return m.checkin(m.Next.UserAuthenticate, ctx, r, c)
}

func (m Metrics) GetToken(ctx context.Context, r *Request, c *mdm.Checkin) (*Answer, error) {
	return m.checkin(m.Next.GetToken, ctx, r, c)
}

func (m Metrics) DeclarativeManagement(ctx context.Context, r *Request, c *mdm.Checkin) (*Answer, error) {
	return m.checkin(m.Next.DeclarativeManagement, ctx, r, c)
}

func (m Metrics) BootstrapToken(ctx context.Context, r *Request, c *mdm.Checkin) (*Answer, error) {
	return m.checkin(m.Next.BootstrapToken, ctx, r, c)
}

func (m Metrics) CommandAndReportResults(ctx context.Context, r *Request, res *mdm.Result) (*Answer, error) {
	a, err := m.Next.CommandAndReportResults(ctx, r, res)
	message := "Result"
	if res.Status == mdm.Idle {
		message = "Idle"
	}
	m.observe(message, err)
	return a, err
}
