package mdmservice

import (
	"context"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/problem"
)

// CertAuth binds the identity certificate to the enrollment a message
// names: after Authenticate, every message's EnrollmentID must be the one
// Authenticate bound to the certificate's enrollment, so one device's
// certificate can never speak for another. Authenticate itself (it makes
// the binding), UserAuthenticate and the bootstrap-token messages (refused
// further in) pass through.
type CertAuth struct{ Next Service }

var _ Service = CertAuth{}

// bound checks that id's EnrollmentID is the one bound to the sender's
// enrollment. Error: Forbidden.
func bound(r *Request, id mdm.Identity) error {
	if e := r.Device.Enrollment.AppleEnrollmentID; e == "" || e != id.EnrollmentID {
		return problem.New(problem.Forbidden, "this identity certificate belongs to another enrollment")
	}
	return nil
}

func (c CertAuth) Authenticate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return c.Next.Authenticate(ctx, r, m)
}

func (c CertAuth) TokenUpdate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	if err := bound(r, m.Identity); err != nil {
		return nil, err
	}
	return c.Next.TokenUpdate(ctx, r, m)
}

func (c CertAuth) CheckOut(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	if err := bound(r, m.Identity); err != nil {
		return nil, err
	}
	return c.Next.CheckOut(ctx, r, m)
}

func (c CertAuth) UserAuthenticate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return c.Next.UserAuthenticate(ctx, r, m)
}

func (c CertAuth) GetToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	if err := bound(r, m.Identity); err != nil {
		return nil, err
	}
	return c.Next.GetToken(ctx, r, m)
}

func (c CertAuth) DeclarativeManagement(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	if err := bound(r, m.Identity); err != nil {
		return nil, err
	}
	return c.Next.DeclarativeManagement(ctx, r, m)
}

func (c CertAuth) BootstrapToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return c.Next.BootstrapToken(ctx, r, m)
}

func (c CertAuth) CommandAndReportResults(ctx context.Context, r *Request, res *mdm.Result) (*Answer, error) {
	if err := bound(r, res.Identity); err != nil {
		return nil, err
	}
	return c.Next.CommandAndReportResults(ctx, r, res)
}
