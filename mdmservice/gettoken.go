package mdmservice

import (
	"context"
	"net/http"

	"github.com/micromdm/plist"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// TokenService answers GetToken check-ins (Apple: "Get Token",
// https://developer.apple.com/documentation/devicemanagement/get-token):
// the TokenData for serviceType, or an error — a problem.Invalid one is
// answered 400 with its message (an unsupported TokenServiceType).
type TokenService interface {
	GetToken(ctx context.Context, e *store.Enrollment, serviceType string) ([]byte, error)
}

// getToken answers a GetToken of an authenticated, bound and admitted
// request: plist {TokenData: <data>} (application/xml).
func (s *Service) getToken(ctx context.Context, a *authenticated, msg *mdm.Checkin, authorization string) Response {
	if resp := bound(a, msg.Identity); resp != nil {
		return *resp
	}
	if resp := s.admit(ctx, a, msg.Identity, authorization); resp != nil {
		return *resp
	}
	if s.Tokens == nil {
		return plain(http.StatusBadRequest, "unsupported TokenServiceType "+msg.TokenServiceType)
	}
	data, err := s.Tokens.GetToken(ctx, a.enr, msg.TokenServiceType)
	if err != nil {
		if p, ok := problem.As(err); ok && p.Kind == problem.Invalid {
			return plain(http.StatusBadRequest, p.Message)
		}
		return plain(http.StatusInternalServerError, err.Error())
	}
	body, err := plist.MarshalIndent(map[string]any{"TokenData": data}, "\t")
	if err != nil {
		return plain(http.StatusInternalServerError, err.Error())
	}
	return Response{Status: http.StatusOK, ContentType: "application/xml; charset=utf-8", Body: body, Reason: "token " + msg.TokenServiceType}
}
