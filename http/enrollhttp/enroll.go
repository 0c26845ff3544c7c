// Package enrollhttp serves the enrollment endpoint, the BaseURL that
// discovery hands to devices: POST without a token answers the 401
// apple-as-web challenge, POST with a valid token answers the signed
// enrollment profile.
//
// Apple: https://developer.apple.com/documentation/devicemanagement/implementing-the-simple-authentication-account-driven-enrollment-flow
// (the 401 with WWW-Authenticate: Bearer method="apple-as-web", then the
// POST with Authorization: Bearer, RFC 6750 §2.1).
package enrollhttp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/pomona-mdm/pomona/auth"
	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/store"
)

// Handler serves POST /enroll/{tenant}: the body is the device's CMS-signed
// machine-info plist (at most enroll.MaxBody bytes, else 413; unreadable,
// 400). Without an Authorization header it answers 401 and the
// apple-as-web challenge; with a valid bearer token, 200 and the signed
// profile (application/x-apple-aspen-config). An invalid or already used
// token gets 403 (a second 401 would loop the device), a family Pomona
// does not enroll 403, no push certificate yet 503, an unknown tenant 404,
// another method 405; these answers are short text. Store and issuance
// failures are rendered by httpx.WriteError.
type Handler struct {
	Tenants interface {
		Tenant(ctx context.Context, id string) (*store.Tenant, error)
	}
	Auth   *auth.Service
	Enroll *enroll.Service
	// PushCert returns the current push certificate (pushcert.ErrNone when
	// there is none).
	PushCert func(ctx context.Context) (*pushcert.Cert, error)
	// LoginURL is the sign-in page of a tenant.
	LoginURL func(tenantID string) string
	Log      *slog.Logger
	Metrics  *metrics.Metrics
	// OnProfile, when set, hears about every profile handed out.
	OnProfile func(ctx context.Context, e *store.Enrollment)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	result := h.serve(w, r)
	h.Metrics.Enrollment.WithLabelValues(result).Inc()
}

// plain writes a short text answer (the device shows nothing of it, but
// people debugging with curl read it).
func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) string {
	ctx := r.Context()
	log := h.Log.With("tenant", r.PathValue("tenant"), "remote", r.RemoteAddr, "user_agent", r.UserAgent())
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		plain(w, http.StatusMethodNotAllowed, "use POST")
		return "bad-method"
	}
	tenant, err := h.Tenants.Tenant(ctx, r.PathValue("tenant"))
	if errors.Is(err, store.ErrNotFound) {
		log.Info("enrollment refused: unknown tenant")
		plain(w, http.StatusNotFound, "unknown enrollment URL")
		return "unknown-tenant"
	}
	if err != nil {
		httpx.WriteError(w, r, h.Log, err)
		return "error"
	}
	// Read the raw body whatever the Content-Type: iOS 15 sent
	// application/x-www-form-urlencoded for this binary CMS body.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, enroll.MaxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		log.Info("enrollment refused: body too large", "limit", enroll.MaxBody)
		plain(w, http.StatusRequestEntityTooLarge, "request body too large")
		return "too-large"
	}
	if err != nil {
		log.Info("enrollment refused: cannot read body", "err", err)
		plain(w, http.StatusBadRequest, "cannot read the request body")
		return "bad-body"
	}
	parsed, err := enroll.ParseBody(body)
	if err != nil {
		log.Info("enrollment refused: bad machine info", "err", err, "content_type", r.Header.Get("Content-Type"), "bytes", len(body))
		plain(w, http.StatusBadRequest, err.Error())
		return "bad-body"
	}
	log = log.With("product", parsed.Info.Product, "build", parsed.Info.Version, "device_signature", parsed.Signature)
	if enroll.Platform(parsed.Info.Product) == "" {
		log.Info("enrollment refused: device type not enrolled")
		plain(w, http.StatusForbidden, "this kind of device cannot be enrolled")
		return "unsupported-device"
	}
	push, err := h.PushCert(ctx)
	if err != nil {
		log.Error("enrollment unavailable: no usable APNs push certificate", "err", err)
		plain(w, http.StatusServiceUnavailable, "enrollment is not available yet: the server has no push certificate. Contact your IT department.")
		return "no-push-cert"
	}
	grant, err := h.Auth.Authorize(ctx, tenant.ID, r.Header.Get("Authorization"))
	switch {
	case errors.Is(err, auth.ErrNoToken):
		// The only correct first answer: the device opens the sign-in page.
		w.Header().Set("WWW-Authenticate", enroll.WWWAuthenticate(h.LoginURL(tenant.ID)))
		plain(w, http.StatusUnauthorized, "sign in to continue")
		log.Info("enrollment challenge sent", "signature_detail", parsed.SignatureDetail)
		return "challenge"
	case errors.Is(err, auth.ErrInvalidToken):
		// Not 401: a second challenge would loop the device.
		log.Info("enrollment refused: bad access token", "err", err)
		plain(w, http.StatusForbidden, "the sign-in is no longer valid: start the enrollment again in Settings")
		return "bad-token"
	case err != nil:
		httpx.WriteError(w, r, h.Log, err)
		return "error"
	}
	tok, _ := opaquetoken.FromHeader(r.Header.Get("Authorization"))
	signed, e, err := h.Enroll.Profile(ctx, enroll.Request{Tenant: tenant, User: grant.User, TokenHash: opaquetoken.Hash(tok), Body: parsed, Topic: push.Topic})
	if errors.Is(err, enroll.ErrSignInUsed) {
		log.Info("enrollment refused: the sign-in was already used", "user", grant.User.ID, "err", err)
		plain(w, http.StatusForbidden, enroll.ErrSignInUsed.Error())
		return "sign-in-used"
	}
	if err != nil {
		httpx.WriteError(w, r, h.Log, err)
		return "error"
	}
	log.Info("enrollment profile issued", "enrollment", e.ID, "user", grant.User.ID, "platform", e.Platform)
	if h.OnProfile != nil {
		h.OnProfile(ctx, e)
	}
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `attachment; filename="enrollment.mobileconfig"`)
	w.Write(signed)
	return "profile"
}
