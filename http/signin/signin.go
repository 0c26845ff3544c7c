// Package signin serves the web pages a device shows in its
// authentication sheet during account-driven enrollment: the account
// (prefilled), the password, then the second factor (a TOTP code, or its
// first-time setup), ending with a 308 to Apple's callback scheme carrying
// the access token. The pages work without JavaScript, in any browser.
//
// Sign-in state lives in a sealed, short-lived cookie rather than in
// server memory, so any instance can serve the next step and cancelling
// leaves nothing behind.
//
// Apple: https://developer.apple.com/documentation/devicemanagement/implementing-the-simple-authentication-account-driven-enrollment-flow
// (the login URL of the apple-as-web challenge and the
// apple-remotemanagement-user-login://authentication-results callback);
// verification codes are RFC 6238 TOTP.
package signin

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/address"
	"github.com/pomona-mdm/pomona/auth"
	"github.com/pomona-mdm/pomona/branding"
	"github.com/pomona-mdm/pomona/credential"
	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/totp"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").ParseFS(templateFS, "templates/*.html"))

// Sealer protects the sign-in state cookie.
type Sealer interface {
	Seal(plaintext []byte, context string) []byte
	Open(sealed []byte, context string) ([]byte, error)
}

// Handler serves GET, HEAD and POST /login/{tenant}: the login URL of the
// apple-as-web challenge, to which the device appends ?user-identifier=
// (https://developer.apple.com/documentation/devicemanagement/implementing-the-simple-authentication-account-driven-enrollment-flow).
// Pages are HTML; a finished sign-in answers 308 to enroll.CallbackURL.
// An unknown tenant is 404, another method 405, a user-identifier that is
// no email address 400. State lives at most StateTTL.
type Handler struct {
	Tenants interface {
		Tenant(ctx context.Context, id string) (*store.Tenant, error)
		TenantLogo(ctx context.Context, tenantID string) (*store.Logo, error)
	}
	Auth   *auth.Service
	Sealer Sealer
	// Origin is Pomona's public origin (scheme://host[:port]); a POST with
	// another Origin header is refused.
	Origin string
	// Secure marks the cookie Secure (public URL is https).
	Secure  bool
	Log     *slog.Logger
	Metrics *metrics.Metrics
	Now     func() time.Time
}

// StateTTL bounds one sign-in, from the first page to the last code.
const StateTTL = 15 * time.Minute

const cookieName = "pomona_signin"

// Steps of a sign-in.
const (
	stepPassword = "password"
	stepCode     = "code"
	stepSetup    = "setup"
)

// state is what the sealed cookie carries between steps.
type state struct {
	Tenant     string `json:"t"`
	Identifier string `json:"i"`           // what the person typed on the device
	UserID     string `json:"u,omitempty"` // set once the password was right
	Step       string `json:"s"`
	Secret     []byte `json:"k,omitempty"` // new TOTP secret during setup (sealed with the cookie)
	CSRF       string `json:"c"`
	Expires    int64  `json:"e"`
}

type view struct {
	tenant     *store.Tenant // for the branding; nil on pages of no tenant
	Tenant     string
	Identifier string
	Editable   bool // no identifier came with the request (a browser, not a device)
	Action     string
	CSRF       string
	Error      string
	// Setup
	SecretText string
	OTPAuthURL template.URL
	QR         template.HTML
	Restart    string
	Title      string
	Message    string
	Brand      brand // set by render from tenant
}

// brand is a tenant's branding as the templates use it.
type brand struct {
	Accent     template.CSS // "#rrggbb", checked again here; "" for the default look
	LogoURL    string       // versioned by the logo's time, so caches refresh on change
	Contact    string
	PrivacyURL string
}

// brandOf returns the tenant's branding for a page. The values were
// checked when stored; the accent and the link are checked again because
// they land in CSS and an href.
func (h *Handler) brandOf(t *store.Tenant) brand {
	var b brand
	if t == nil {
		return b
	}
	if c, err := branding.Accent(t.AccentColor); err == nil {
		b.Accent = template.CSS(c)
	}
	if u, err := branding.PrivacyURL(t.PrivacyURL); err == nil {
		b.PrivacyURL = u
	}
	b.Contact = t.Contact
	if !t.LogoUpdatedAt.IsZero() {
		b.LogoURL = h.loginPath(t) + "/logo?v=" + strconv.FormatInt(t.LogoUpdatedAt.UnixMicro(), 36)
	}
	return b
}

// ServeLogo serves GET /login/{tenant}/logo: the tenant's logo for its
// sign-in pages, public like the pages. Only PNG and JPEG are ever stored
// (package branding); the answer is still made inert: its own type,
// nosniff, and a CSP sandbox in case it is opened as a document.
func (h *Handler) ServeLogo(w http.ResponseWriter, r *http.Request) {
	l, err := h.Tenants.TenantLogo(r.Context(), r.PathValue("tenant"))
	if err != nil || (l.ContentType != branding.PNG && l.ContentType != branding.JPEG) {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			h.Log.Error("sign-in: logo lookup failed", "err", err)
		}
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", l.ContentType)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Cache-Control", "public, max-age=3600")
	http.ServeContent(w, r, "", l.UpdatedAt, bytes.NewReader(l.Data))
}

func (h *Handler) now() time.Time { return h.Now() }

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (h *Handler) sealContext(tenant string) string { return "signin:" + tenant }

func (h *Handler) writeState(w http.ResponseWriter, r *http.Request, st *state) {
	b, _ := json.Marshal(st)
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: base64.RawURLEncoding.EncodeToString(h.Sealer.Seal(b, h.sealContext(st.Tenant))),
		Path: "/login/" + st.Tenant, MaxAge: int(StateTTL.Seconds()), HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode,
	})
}

func (h *Handler) clearState(w http.ResponseWriter, tenant string) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/login/" + tenant, MaxAge: -1, HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode})
}

func (h *Handler) readState(r *http.Request, tenant string) (*state, error) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil, errors.New("no sign-in in progress")
	}
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return nil, errors.New("malformed sign-in cookie")
	}
	b, err := h.Sealer.Open(raw, h.sealContext(tenant))
	if err != nil {
		return nil, errors.New("the sign-in cookie does not open")
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil || st.Tenant != tenant {
		return nil, errors.New("the sign-in cookie is for another page")
	}
	if h.now().Unix() > st.Expires {
		return nil, errors.New("the sign-in took too long")
	}
	return &st, nil
}

func securityHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Chrome applies form-action to the redirect after a POST, so Apple's
	// callback scheme must be allowed there.
	httpx.PageHeaders(w, "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self' apple-remotemanagement-user-login:; frame-ancestors 'none'; base-uri 'none'",
		"no-referrer")
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, v view) {
	securityHeaders(w)
	v.Brand = h.brandOf(v.tenant)
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, v); err != nil {
		h.Log.Error("sign-in page template failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (h *Handler) message(w http.ResponseWriter, status int, tenant *store.Tenant, title, msg, restart string) {
	name := ""
	if tenant != nil {
		name = tenant.Name
	}
	h.render(w, status, "message.html", view{tenant: tenant, Tenant: name, Title: title, Message: msg, Restart: restart})
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tenant, err := h.Tenants.Tenant(r.Context(), r.PathValue("tenant"))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			h.Log.Error("sign-in: tenant lookup failed", "err", err)
		}
		h.message(w, http.StatusNotFound, nil, "Unknown sign-in page", "This sign-in address is not in use. Start the enrollment again in Settings.", "")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.start(w, r, tenant)
	case http.MethodPost:
		h.post(w, r, tenant)
	default:
		w.Header().Set("Allow", "GET, POST")
		h.message(w, http.StatusMethodNotAllowed, tenant, "Not allowed", "Use the sign-in form.", "")
	}
}

func (h *Handler) loginPath(t *store.Tenant) string { return "/login/" + t.ID }

func (h *Handler) restartURL(t *store.Tenant, identifier string) string {
	u := h.loginPath(t)
	if identifier != "" {
		u += "?user-identifier=" + url.QueryEscape(identifier)
	}
	return u
}

// start shows the first page. The device appends user-identifier to the
// challenge URL; a plain browser visit lets the person type it.
func (h *Handler) start(w http.ResponseWriter, r *http.Request, t *store.Tenant) {
	id := r.URL.Query().Get("user-identifier")
	if id != "" {
		if _, _, err := address.Email(id); err != nil {
			h.message(w, http.StatusBadRequest, t, "Check the address", "“"+id+"” is not an email address. Go back and enter your work email address.", "")
			return
		}
	}
	st := &state{Tenant: t.ID, Identifier: id, Step: stepPassword, CSRF: randomToken(), Expires: h.now().Add(StateTTL).Unix()}
	h.writeState(w, r, st)
	h.render(w, http.StatusOK, "password.html", view{tenant: t, Tenant: t.Name, Identifier: id, Editable: id == "", Action: h.loginPath(t), CSRF: st.CSRF})
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request, t *store.Tenant) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		h.message(w, http.StatusBadRequest, t, "Something went wrong", "The form could not be read. Start again.", h.restartURL(t, ""))
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" && o != h.Origin {
		h.Metrics.SignIn.WithLabelValues("csrf").Inc()
		h.Log.Warn("sign-in refused: cross-origin POST", "origin", o, "remote", r.RemoteAddr)
		h.message(w, http.StatusForbidden, t, "Request refused", "This form was sent from another site.", "")
		return
	}
	st, err := h.readState(r, t.ID)
	if err != nil {
		h.Metrics.SignIn.WithLabelValues("no-state").Inc()
		h.Log.Info("sign-in: no valid state", "err", err, "remote", r.RemoteAddr)
		h.message(w, http.StatusBadRequest, t, "Please start again", "Your sign-in session expired or was interrupted.", h.restartURL(t, r.PostForm.Get("identifier")))
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(st.CSRF)) != 1 {
		h.Metrics.SignIn.WithLabelValues("csrf").Inc()
		h.Log.Warn("sign-in refused: CSRF token mismatch", "remote", r.RemoteAddr)
		h.message(w, http.StatusForbidden, t, "Request refused", "The form has expired. Start again.", h.restartURL(t, st.Identifier))
		return
	}
	if r.PostForm.Get("action") == "cancel" {
		h.clearState(w, t.ID)
		h.Metrics.SignIn.WithLabelValues("cancelled").Inc()
		h.message(w, http.StatusOK, t, "Sign-in cancelled", "Nothing was changed on your device. You can close this window.", "")
		return
	}
	switch st.Step {
	case stepPassword:
		h.password(w, r, t, st)
	case stepCode:
		h.code(w, r, t, st)
	case stepSetup:
		h.setup(w, r, t, st)
	default:
		h.message(w, http.StatusBadRequest, t, "Please start again", "Your sign-in session was interrupted.", h.restartURL(t, st.Identifier))
	}
}

func (h *Handler) refuse(w http.ResponseWriter, t *store.Tenant, st *state, err error, page string, v view) bool {
	var le *credential.LockedError
	switch {
	case errors.As(err, &le):
		h.Metrics.SignIn.WithLabelValues("locked").Inc()
		mins := int(le.RetryAfter.Minutes()) + 1
		h.message(w, http.StatusTooManyRequests, t, "Too many attempts",
			fmt.Sprintf("Sign-in is paused after too many failed attempts. Try again in %d minute%s.", mins, map[bool]string{true: "", false: "s"}[mins == 1]),
			h.restartURL(t, st.Identifier))
		return true
	case errors.Is(err, auth.ErrDisabled):
		h.Metrics.SignIn.WithLabelValues("disabled").Inc()
		h.message(w, http.StatusForbidden, t, "Account not allowed", "This account can't enroll devices. Contact your IT department.", "")
		return true
	case errors.Is(err, auth.ErrBadCredentials):
		h.Metrics.SignIn.WithLabelValues("bad-credentials").Inc()
		v.Error = "The account or password is not correct."
	case errors.Is(err, auth.ErrBadCode):
		h.Metrics.SignIn.WithLabelValues("bad-code").Inc()
		v.Error = "That code is not correct or was already used. Enter the current code."
	default:
		h.Log.Error("sign-in failed", "err", err)
		h.message(w, http.StatusInternalServerError, t, "Something went wrong", "Please try again in a moment.", h.restartURL(t, st.Identifier))
		return true
	}
	h.render(w, http.StatusUnauthorized, page, v)
	return true
}

func (h *Handler) password(w http.ResponseWriter, r *http.Request, t *store.Tenant, st *state) {
	id := st.Identifier
	if id == "" {
		id = r.PostForm.Get("identifier")
	}
	v := view{tenant: t, Tenant: t.Name, Identifier: id, Editable: st.Identifier == "", Action: h.loginPath(t), CSRF: st.CSRF}
	email, _, err := address.Email(id)
	if err != nil {
		v.Error = "Enter your work email address."
		h.render(w, http.StatusBadRequest, "password.html", v)
		return
	}
	u, err := h.Auth.VerifyPassword(r.Context(), t.ID, email, r.PostForm.Get("password"), httpx.ClientIP(r))
	if err != nil {
		h.Log.Info("sign-in: password refused", "identifier", email, "tenant", t.ID, "err", err, "remote", r.RemoteAddr)
		h.refuse(w, t, st, err, "password.html", v)
		return
	}
	st.Identifier, st.UserID = id, u.ID
	switch auth.NextStep(t, u) {
	case auth.SecondFactorVerify:
		st.Step = stepCode
		h.writeState(w, r, st)
		h.render(w, http.StatusOK, "code.html", view{tenant: t, Tenant: t.Name, Identifier: id, Action: h.loginPath(t), CSRF: st.CSRF})
	case auth.SecondFactorSetup:
		st.Step, st.Secret = stepSetup, totp.NewSecret()
		h.writeState(w, r, st)
		h.render(w, http.StatusOK, "setup.html", h.setupView(t, st, ""))
	default:
		h.finish(w, r, t, st, u)
	}
}

func (h *Handler) setupView(t *store.Tenant, st *state, errMsg string) view {
	uri := totp.URI(st.Secret, t.Name, st.Identifier)
	enc := totp.Encode(st.Secret)
	var groups []string
	for i := 0; i < len(enc); i += 4 {
		groups = append(groups, enc[i:min(i+4, len(enc))])
	}
	return view{tenant: t, Tenant: t.Name, Identifier: st.Identifier, Action: h.loginPath(t), CSRF: st.CSRF, Error: errMsg,
		SecretText: strings.Join(groups, " "), OTPAuthURL: template.URL(uri), QR: qrSVG(uri)}
}

func (h *Handler) code(w http.ResponseWriter, r *http.Request, t *store.Tenant, st *state) {
	u, err := h.Auth.VerifyTOTP(r.Context(), st.UserID, r.PostForm.Get("code"), httpx.ClientIP(r))
	if err != nil {
		h.Log.Info("sign-in: code refused", "user", st.UserID, "err", err, "remote", r.RemoteAddr)
		h.refuse(w, t, st, err, "code.html", view{tenant: t, Tenant: t.Name, Identifier: st.Identifier, Action: h.loginPath(t), CSRF: st.CSRF})
		return
	}
	h.finish(w, r, t, st, u)
}

func (h *Handler) setup(w http.ResponseWriter, r *http.Request, t *store.Tenant, st *state) {
	u, err := h.Auth.ConfirmTOTP(r.Context(), st.UserID, st.Secret, r.PostForm.Get("code"), httpx.ClientIP(r))
	if err != nil {
		h.Log.Info("sign-in: setup code refused", "user", st.UserID, "err", err, "remote", r.RemoteAddr)
		h.refuse(w, t, st, err, "setup.html", h.setupView(t, st, ""))
		return
	}
	h.finish(w, r, t, st, u)
}

// finish issues the access token and hands it to the device through
// Apple's callback scheme.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, t *store.Tenant, st *state, u *store.User) {
	if !u.Enabled {
		h.refuse(w, t, st, auth.ErrDisabled, "", view{})
		return
	}
	tok, err := h.Auth.IssueToken(r.Context(), u)
	if err != nil {
		h.refuse(w, t, st, err, "", view{})
		return
	}
	h.clearState(w, t.ID)
	h.Metrics.SignIn.WithLabelValues("success").Inc()
	h.Log.Info("sign-in complete: access token issued", "user", u.ID, "tenant", t.ID, "remote", r.RemoteAddr)
	securityHeaders(w)
	w.Header().Set("Location", enroll.CallbackURL(tok))
	w.WriteHeader(http.StatusPermanentRedirect)
}

// qrSVG renders text as an inline SVG QR code.
func qrSVG(text string) template.HTML {
	return template.HTML(totp.QRSVG(text, "QR code for your authenticator app"))
}
