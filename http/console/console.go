// Package console is the administrators' web console under /console:
// server-rendered pages (html/template, no JavaScript required) over the
// same services the admin API uses. Console accounts sign in with a
// password and a TOTP code; sessions live in the store (any instance
// serves any request), expire when idle, and every POST carries a CSRF
// token derived from the session and must come from Pomona's own origin.
// Every change is written to the audit log as "console:<email>".
package console

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/adminaccount"
	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/discovery/check"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console lives.
const Prefix = "/console"

const (
	sessionCookie = "pomona_console"
	flashCookie   = "pomona_console_flash"
	// MaxForm bounds a form body (CSV imports and certificates included).
	MaxForm = 4 << 20
)

// Console serves the web console.
type Console struct {
	// Admins signs console accounts in and keeps their sessions.
	Admins *adminaccount.Service
	// App holds the use cases every page calls.
	App       *app.App
	Catalog   *catalog.Catalog
	EnrollURL func(tenantID string) string
	PublicURL string
	// Origin is Pomona's public origin; POSTs from another origin are refused.
	Origin string
	// Secure marks cookies Secure (the public URL is https).
	Secure bool
	// Check runs a live discovery check of a domain.
	Check   func(ctx context.Context, o check.Options) *check.Report
	Log     *slog.Logger
	Metrics *metrics.Metrics
	Now     func() time.Time
	Version string

	pages map[string]*template.Template
	// getPages holds the console's GET patterns only, for back.
	getPages *http.ServeMux
}

// Request is what a page handler knows about the signed-in administrator.
type Request struct {
	*http.Request
	Admin *store.Admin
	CSRF  string
	// Target is what a POST changed when its path names nothing: a
	// create sets the new object's id, a form naming its object in a
	// field sets that, for the audit entry ("POST /console/tenants" then
	// says which tenant it made).
	Target string
}

type pageFunc func(w http.ResponseWriter, r *Request) error

// Register mounts the console on mux.
func (c *Console) Register(mux *http.ServeMux) {
	c.pages = parsePages()
	static, _ := fs.Sub(staticFS, "static")
	fileServer := http.StripPrefix(Prefix+"/static/", http.FileServer(http.FS(static)))
	mux.Handle("GET "+Prefix+"/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fileServer.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET "+Prefix+"/login", c.loginPage)
	mux.HandleFunc("POST "+Prefix+"/login", c.login)
	mux.HandleFunc("GET "+Prefix+"/setup", c.setupPage)
	mux.HandleFunc("POST "+Prefix+"/setup", c.setup)
	mux.HandleFunc("GET "+Prefix, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"/", http.StatusFound)
	})
	c.getPages = http.NewServeMux()
	for _, rt := range c.routes() {
		mux.Handle(rt.pattern, c.authenticated(rt.perm, rt.h))
		if strings.HasPrefix(rt.pattern, "GET ") {
			c.getPages.Handle(rt.pattern, http.NotFoundHandler())
		}
	}
}

type route struct {
	pattern string
	perm    adminaccount.Permission
	h       pageFunc
}

func (c *Console) routes() []route {
	R, S, M, A := adminaccount.Read, adminaccount.Support, adminaccount.Manage, adminaccount.Accounts
	return append([]route{
		{"GET /console/{$}", R, c.dashboard},
		{"POST /console/logout", R, c.logout},
		{"GET /console/tenants", R, c.tenants},
		{"POST /console/tenants", M, c.createTenant},
		{"GET /console/tenants/{id}", R, c.tenant},
		{"POST /console/tenants/{id}", M, c.updateTenant},
		{"POST /console/tenants/{id}/check", R, c.checkDomain},
		{"POST /console/tenants/{id}/branding", M, c.updateBranding},
		{"POST /console/tenants/{id}/delete", M, c.deleteTenant},
		{"GET /console/tenants/{id}/delete", M, c.confirmDeleteTenant},
		{"POST /console/tenants/{id}/delete-with-users", M, c.deleteTenantWithUsers},
		{"GET /console/users", R, c.users},
		{"POST /console/users", M, c.createUser},
		{"POST /console/users/import", M, c.importUsers},
		{"GET /console/users/{id}", R, c.user},
		{"POST /console/users/{id}/enabled", M, c.setUserEnabled},
		{"POST /console/users/{id}/password", M, c.setUserPassword},
		{"POST /console/users/{id}/second-factor", M, c.resetUserTOTP},
		{"POST /console/users/{id}/reauthenticate", S, c.reauthenticate},
		{"GET /console/users/{id}/delete", M, c.confirmDeleteUser},
		{"POST /console/users/{id}/delete", M, c.deleteUser},
		{"GET /console/devices", R, c.devices},
		{"GET /console/devices/{id}", R, c.device},
		{"POST /console/devices/{id}/commands", M, c.sendCommand},
		{"POST /console/devices/{id}/commands/{uuid}/resend", S, c.resendCommand},
		{"POST /console/devices/{id}/push", S, c.pushDevice},
		{"POST /console/devices/{id}/unenroll", M, c.unenroll},
		{"GET /console/push", R, c.pushPage},
		{"POST /console/push/csr", M, c.pushCSR},
		{"POST /console/push/certificate", M, c.pushUpload},
		{"GET /console/apikeys", R, c.apiKeys},
		{"POST /console/apikeys", M, c.createAPIKey},
		{"POST /console/apikeys/{id}/revoke", M, c.revokeAPIKey},
		{"GET /console/webhooks", R, c.webhooks},
		{"POST /console/webhooks", M, c.createWebhook},
		{"POST /console/webhooks/{id}/delete", M, c.deleteWebhook},
		{"GET /console/audit", R, c.auditPage},
		{"GET /console/admins", R, c.adminsPage},
		{"POST /console/admins", A, c.inviteAdmin},
		{"POST /console/admins/{id}", A, c.updateAdmin},
		{"POST /console/admins/{id}/reset", A, c.resetAdmin},
	}, append(c.abmRoutes(), c.profileRoutes()...)...)
}

// Patterns lists every authenticated route (for tests).
func (c *Console) Patterns() []string {
	var out []string
	for _, r := range c.routes() {
		out = append(out, r.pattern)
	}
	return out
}

// csp is the console pages' Content-Security-Policy: no script, styles
// and images from the console itself, forms only to itself.
const csp = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(w http.ResponseWriter) { httpx.PageHeaders(w, csp, "same-origin") }

// sameOrigin refuses cross-site POSTs: the Origin header (or, without one,
// Sec-Fetch-Site) must say the form came from Pomona itself.
func (c *Console) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return o == c.Origin
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

func (c *Console) authenticated(perm adminaccount.Permission, h pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		var cookie string
		if ck, err := r.Cookie(sessionCookie); err == nil {
			cookie = ck.Value
		}
		a, err := c.Admins.Session(r.Context(), cookie)
		if err != nil {
			if !errors.Is(err, adminaccount.ErrNoSession) {
				c.Log.Error("console: session lookup failed", "err", err)
				http.Error(w, "The console cannot reach its database; see the server log.", http.StatusServiceUnavailable)
				return
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.setFlash(w, "error", "Your session ended. Sign in again and repeat the action.")
			http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
			return
		}
		req := &Request{Request: r, Admin: a, CSRF: adminaccount.CSRFToken(cookie)}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, MaxForm)
			if err := parseForm(r); err != nil {
				if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
					c.tooLarge(w, req)
					return
				}
				c.fail(w, req, http.StatusBadRequest, "The form could not be read: "+err.Error())
				return
			}
			if !c.sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(req.CSRF)) != 1 {
				c.Log.Warn("console: POST refused (cross-site or missing CSRF token)", "path", r.URL.Path, "admin", a.Email, "remote", r.RemoteAddr)
				c.fail(w, req, http.StatusForbidden, "This form was not sent from this console (or it is too old). Reload the page and try again.")
				c.audit(r, a, http.StatusForbidden, "")
				return
			}
		}
		if !adminaccount.Can(a.Role, perm) {
			c.fail(w, req, http.StatusForbidden, fmt.Sprintf("Your role (%s) does not allow this.", adminaccount.RoleTitle(a.Role)))
			c.audit(r, a, http.StatusForbidden, "")
			return
		}
		rec := &httpx.StatusRecorder{ResponseWriter: w}
		if err := h(rec, req); err != nil {
			c.handleError(rec, req, err)
		}
		if r.Method == http.MethodPost {
			c.audit(r, a, rec.Status, req.Target)
		}
	})
}

// tooLarge answers a form over MaxForm (only part of it was read, the
// CSRF token perhaps not) on the page it came from, as a refusal after
// the form was read would (a profile upload: the file's 2 MiB limit),
// not on an error page that names the body's bound.
func (c *Console) tooLarge(w http.ResponseWriter, r *Request) {
	msg := fmt.Sprintf("The form is larger than %d MiB: choose a smaller file.", MaxForm>>20)
	if r.Pattern == "POST "+Prefix+"/profiles" || r.Pattern == "POST "+Prefix+"/profiles/{id}/versions" {
		msg = app.ProfileTooLarge().Message
	}
	c.Log.Info("console: refused", "path", r.URL.Path, "admin", r.Admin.Email, "status", http.StatusRequestEntityTooLarge, "reason", "form larger than MaxForm")
	c.setFlash(w, "error", msg)
	http.Redirect(w, r.Request, c.back(r), http.StatusSeeOther)
}

func parseForm(r *http.Request) error {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		return r.ParseMultipartForm(MaxForm)
	}
	return r.ParseForm()
}

// audit records a console change. Form values are never recorded. The
// target is the path's object, else what the handler named (Request.Target:
// the object a create made).
func (c *Console) audit(r *http.Request, a *store.Admin, status int, named string) {
	if status == 0 {
		status = http.StatusOK
	}
	target := r.PathValue("id")
	if u := r.PathValue("uuid"); u != "" {
		target += "/" + u
	}
	if target == "" {
		target = named
	}
	e := &store.AuditEntry{At: c.Now().UTC(), Actor: "console:" + a.Email, Action: r.Pattern, Target: target, Status: status, Remote: r.RemoteAddr}
	if err := c.App.Audit.Record(r.Context(), e); err != nil {
		c.Log.Error("cannot write the audit log", "err", err, "action", e.Action, "actor", e.Actor)
	}
}

// handleError turns an error of a page into what the administrator sees,
// with the status and message the API would answer (httpx.Classify, the
// one mapping): after a POST, a message on the page they came from; on a
// GET, an error page.
func (c *Console) handleError(w http.ResponseWriter, r *Request, err error) {
	status, body := httpx.Log(c.Log, r.Request, err, "admin", r.Admin.Email)
	msg := body.Error
	if status == http.StatusInternalServerError {
		msg = "Something went wrong on the server; the log has the details."
	}
	if r.Method == http.MethodPost {
		// Back to the page the form was on, with the reason and the
		// input (but its secrets: refillFields).
		c.setFlash(w, "error", msg)
		c.setRefill(w, r.Request)
		if sw, ok := w.(*httpx.StatusRecorder); ok {
			sw.Status = status // the audit records the refusal, not the redirect
		}
		http.Redirect(w, r.Request, c.back(r), http.StatusSeeOther)
		return
	}
	c.fail(w, r, status, msg)
}

// back is where a POST returns: the page it was posted from. A browser
// names it in the Referer (the console's Referrer-Policy is same-origin);
// without one (a proxy or a browser setting strips it) it is the action's
// path when that is a page too, else the nearest page above it: POST
// /console/profiles/{id}/assignments/{group}/remove returns to
// /console/profiles/{id}, not to a path with no page.
//
// The Groups and Profiles pages show one tenant (?tenant=, else the
// first). A refused form of theirs (a group's name taken, a profile's
// identifier uploaded already) returns to the tenant it was posted for
// even when the page it came from has no ?tenant= (it was itself the
// answer to a refused upload, rendered at POST /console/profiles), not to
// the first tenant, whose page contradicted the message ("has a profile
// com.example.wifi already" above "No profiles yet").
func (c *Console) back(r *Request) string {
	page := c.pageAbove(r.URL.Path)
	if ref := r.Header.Get("Referer"); ref != "" {
		if u, err := url.Parse(ref); err == nil && strings.HasPrefix(u.Path, Prefix+"/") {
			page = u.RequestURI()
		}
	}
	if t := r.PostFormValue("tenant"); t != "" && (page == Prefix+"/groups" || page == Prefix+"/profiles") {
		page += "?" + url.Values{"tenant": {t}}.Encode()
	}
	return page
}

// pageAbove is p itself when it is also a console GET page (POST
// /console/users is the form on /console/users), else the longest prefix
// of p (cut at a "/") that is one; the dashboard when none is.
func (c *Console) pageAbove(p string) string {
	for {
		if c.getPages != nil && len(p) > len(Prefix)+1 {
			if _, pattern := c.getPages.Handler(&http.Request{Method: http.MethodGet, Host: "console", URL: &url.URL{Path: p}}); pattern != "" {
				return p
			}
		}
		i := strings.LastIndex(p, "/")
		if i <= len(Prefix) {
			return Prefix + "/"
		}
		p = p[:i]
	}
}

func (c *Console) fail(w http.ResponseWriter, r *Request, status int, msg string) {
	c.render(w, r, status, "error", "Error", map[string]any{"Message": msg, "Status": status})
}

// --- flash messages (one redirect long) ---

func (c *Console) setFlash(w http.ResponseWriter, kind, msg string) {
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(kind + ":" + msg), Path: Prefix, HttpOnly: true,
		Secure: c.Secure, SameSite: http.SameSiteStrictMode, MaxAge: 60})
}

type flash struct{ Kind, Text string }

func (c *Console) takeFlash(w http.ResponseWriter, r *http.Request) *flash {
	ck, err := r.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteStrictMode})
	v, err := url.QueryUnescape(ck.Value)
	if err != nil {
		return nil
	}
	kind, text, ok := strings.Cut(v, ":")
	if !ok || (kind != "ok" && kind != "error") || len(text) > 2000 {
		return nil
	}
	return &flash{kind, text}
}

// done ends a successful POST: a message and a redirect (303) to where.
func (c *Console) done(w http.ResponseWriter, r *Request, where, format string, args ...any) error {
	c.setFlash(w, "ok", fmt.Sprintf(format, args...))
	http.Redirect(w, r.Request, where, http.StatusSeeOther)
	return nil
}
