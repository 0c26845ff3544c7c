package mdmservice

import (
	"context"
	"errors"

	"github.com/pomona-mdm/pomona/auth"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// Authorizer decides on bearer tokens (auth.Service).
type Authorizer interface {
	// Authorize and AuthorizeStale read the token and its user and
	// decide; Check decides on rows already read.
	Authorize(ctx context.Context, tenantID, header string) (*auth.Grant, error)
	AuthorizeStale(ctx context.Context, tenantID, header string) (*auth.Grant, error)
	Check(at *store.AccessToken, u *store.User, tenantID string, stale bool) (*auth.Grant, error)
}

// BearerStore is what ongoing authorization reads and writes.
type BearerStore interface {
	// BindAccessToken ties a token from a later sign-in to the enrollment
	// on its first use (ErrConflict: bound to another).
	BindAccessToken(ctx context.Context, hash []byte, enrollmentID string) error
	// User finds an enrollment's owner (a Mac's device channel carries no
	// bearer: the owner must still be enabled).
	User(ctx context.Context, id string) (*store.User, error)
}

// Bearer is ongoing authorization of account-driven user enrollment
// (Apple, "Onboarding users with account-driven enrollment":
// https://developer.apple.com/documentation/devicemanagement/onboarding-users-with-account-driven-enrollment
// and https://developer.apple.com/documentation/devicemanagement/implementing-the-simple-authentication-account-driven-enrollment-flow;
// the Authorization: Bearer header is RFC 6750 §2.1, the challenge
// RFC 9110 §11.6.1).
// iOS sends the access token on every request and a Mac on its user
// channel: a missing, expired or revoked token is answered 401 with the
// apple-as-web challenge, so the device asks the person to sign in again
// and repeats the very request (a command result included). A Mac's
// device channel carries none: its owner must still be enabled.
type Bearer struct {
	Next  Service
	Auth  Authorizer
	Store BearerStore
	// Challenge is the WWW-Authenticate value of a tenant's 401
	// (Bearer method="apple-as-web", url="<sign-in page>").
	Challenge func(tenantID string) string
}

var _ Service = (*Bearer)(nil)

// needsToken: iOS sends the access token on every request; a Mac only on
// its user channel.
func needsToken(enr *store.Enrollment, id mdm.Identity) bool {
	return enr.Platform == "iOS" || id.Kind() == mdm.UserChannel
}

// admit checks the bearer where the platform sends one and, on a Mac's
// device channel, that the enrollment's owner is still enabled. Errors:
// Unauthenticated with the challenge, Forbidden, unrecognized device.
func (b *Bearer) admit(ctx context.Context, r *Request, id mdm.Identity) error {
	enr := &r.Device.Enrollment
	if needsToken(enr, id) {
		return b.authorize(ctx, r)
	}
	u := r.Device.User
	if u == nil {
		var err error
		u, err = b.Store.User(ctx, enr.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return unrecognized("the enrollment's user no longer exists")
		}
		if err != nil {
			return err
		}
	}
	if !u.Enabled {
		return problem.New(problem.Forbidden, "the enrollment's user is disabled")
	}
	return nil
}

// grant decides on the request's bearer: on the rows Channel already read
// when the token is the enrollment owner's, otherwise through the reads
// of auth (the same decision, one or two more round trips).
func (b *Bearer) grant(ctx context.Context, r *Request, stale bool) (*auth.Grant, error) {
	d := r.Device
	if r.Bearer != "" && d.AccessToken != nil && d.User != nil && d.AccessToken.UserID == d.Enrollment.UserID {
		return b.Auth.Check(d.AccessToken, d.User, d.Enrollment.TenantID, stale)
	}
	if stale {
		return b.Auth.AuthorizeStale(ctx, d.Enrollment.TenantID, r.Authorization)
	}
	return b.Auth.Authorize(ctx, d.Enrollment.TenantID, r.Authorization)
}

func (b *Bearer) authorize(ctx context.Context, r *Request) error {
	enr := &r.Device.Enrollment
	g, err := b.grant(ctx, r, false)
	if err != nil {
		if errors.Is(err, auth.ErrNoToken) || errors.Is(err, auth.ErrInvalidToken) {
			return &problem.Error{Kind: problem.Unauthenticated, Code: problem.Unauthenticated.String(),
				Message: "sign-in required: " + err.Error(), Challenge: b.Challenge(enr.TenantID)}
		}
		return err
	}
	if g.User.ID != enr.UserID {
		return problem.New(problem.Forbidden, "the access token belongs to another user than this enrollment's")
	}
	if g.Token.DeviceID == enr.ID {
		return nil // bound already: no write on the hot path
	}
	if g.Token.DeviceID != "" {
		return problem.New(problem.Forbidden, "the access token is already used by another enrollment")
	}
	if err := b.Store.BindAccessToken(ctx, opaquetoken.Hash(r.Bearer), enr.ID); errors.Is(err, store.ErrConflict) {
		return problem.New(problem.Forbidden, "the access token is already used by another enrollment")
	} else if err != nil {
		return err
	}
	return nil
}

func (b *Bearer) Authenticate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	if err := b.admit(ctx, r, m.Identity); err != nil {
		return nil, err
	}
	return b.Next.Authenticate(ctx, r, m)
}

func (b *Bearer) TokenUpdate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	if err := b.admit(ctx, r, m.Identity); err != nil {
		return nil, err
	}
	return b.Next.TokenUpdate(ctx, r, m)
}

// CheckOut is never answered 401: the device is leaving and cannot sign in
// again. A stale token still has to belong to this enrollment's user.
func (b *Bearer) CheckOut(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	if r.Authorization != "" {
		if g, err := b.grant(ctx, r, true); err != nil || g.User.ID != r.Device.Enrollment.UserID {
			return nil, problem.New(problem.Forbidden, "the access token does not belong to this enrollment")
		}
	}
	return b.Next.CheckOut(ctx, r, m)
}

func (b *Bearer) UserAuthenticate(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return b.Next.UserAuthenticate(ctx, r, m)
}

func (b *Bearer) GetToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	if err := b.admit(ctx, r, m.Identity); err != nil {
		return nil, err
	}
	return b.Next.GetToken(ctx, r, m)
}

func (b *Bearer) DeclarativeManagement(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	if err := b.admit(ctx, r, m.Identity); err != nil {
		return nil, err
	}
	return b.Next.DeclarativeManagement(ctx, r, m)
}

func (b *Bearer) BootstrapToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return b.Next.BootstrapToken(ctx, r, m)
}

// CommandAndReportResults is admitted before anything is recorded: a 401
// makes the device sign in again and repeat this very request, result
// included.
func (b *Bearer) CommandAndReportResults(ctx context.Context, r *Request, res *mdm.Result) (*Answer, error) {
	if err := b.admit(ctx, r, res.Identity); err != nil {
		return nil, err
	}
	return b.Next.CommandAndReportResults(ctx, r, res)
}
