package mdmservice

import (
	"context"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/problem"
)

// TokenService answers GetToken check-ins for the services it knows
// (m.TokenServiceType, e.g. com.apple.maid for Managed Apple IDs): the
// seam where a token issuer plugs into Core (Apple, "Get Token":
// https://developer.apple.com/documentation/devicemanagement/gettokenrequest).
// The request is authenticated, bound and authorized when it is called.
type TokenService interface {
	GetToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error)
}

// NoTokens is the default TokenService: it serves no TokenServiceType.
type NoTokens struct{}

func (NoTokens) GetToken(ctx context.Context, r *Request, m *mdm.Checkin) (*Answer, error) {
	return nil, problem.New(problem.Invalid, "unsupported TokenServiceType %s", m.TokenServiceType)
}
