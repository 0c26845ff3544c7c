package abm

import (
	"context"

	"github.com/micromdm/plist"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdmservice"
)

// TokenAnswerer is the MDM channel's TokenService (mdmservice.Config.Tokens):
// it answers a GetToken check-in (Apple, "Get Token":
// https://developer.apple.com/documentation/devicemanagement/get-token)
// of an authenticated, bound and authorized device with the plist
// {TokenData: <data>} of Service.GetToken — a com.apple.maid JWT signed
// with the tenant's server token — and returns Service.GetToken's
// refusals (problem.Invalid: 400) for other service types or without a
// server token.
type TokenAnswerer struct{ Service *Service }

var _ mdmservice.TokenService = TokenAnswerer{}

// GetToken answers m for the request's device.
func (t TokenAnswerer) GetToken(ctx context.Context, r *mdmservice.Request, m *mdm.Checkin) (*mdmservice.Answer, error) {
	data, err := t.Service.GetToken(ctx, &r.Device.Enrollment, m.TokenServiceType)
	if err != nil {
		return nil, err
	}
	body, err := plist.MarshalIndent(map[string]any{"TokenData": data}, "\t")
	if err != nil {
		return nil, err
	}
	return &mdmservice.Answer{Body: body, ContentType: "application/xml; charset=utf-8", Reason: "token " + m.TokenServiceType}, nil
}
