// Package api is the admin REST API under /api/v1: JSON in and out
// (package apitypes), authenticated with API keys, errors as
// {"error": "...", "code": "..."} (httpx.Classify). Handlers only decode,
// call the application layer (package app) and encode; the use cases and
// their rules live there.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/apikey"
	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// OpenAPI is the API description served at /api/v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// MaxBody bounds every request body of the admin API.
const MaxBody = 1 << 20

// API serves the admin REST API.
type API struct {
	App     *app.App
	Auth    *KeyAuth
	Log     *slog.Logger
	Metrics *metrics.Metrics
	// PublicURL is Pomona's externally visible base URL.
	PublicURL string
	// EnrollURL is the discovery BaseURL of a tenant.
	EnrollURL func(tenantID string) string
	Version   string
	Now       func() time.Time
	// SetupURL makes a console account's setup link.
	SetupURL func(token string) string
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type route struct {
	pattern string
	h       handlerFunc
}

// Patterns lists every authenticated route pattern (for the OpenAPI test).
func (a *API) Patterns() []string {
	var out []string
	for _, r := range a.routes() {
		out = append(out, r.pattern)
	}
	return append(out, "GET /api/v1/openapi.json")
}

func (a *API) routes() []route {
	return append([]route{
		{"GET /api/v1/server", a.serverInfo},
		{"POST /api/v1/tenants", a.createTenant},
		{"GET /api/v1/tenants", a.listTenants},
		{"GET /api/v1/tenants/{id}", a.getTenant},
		{"PATCH /api/v1/tenants/{id}", a.patchTenant},
		{"DELETE /api/v1/tenants/{id}", a.deleteTenant},
		{"PUT /api/v1/tenants/{id}/logo", a.putLogo},
		{"DELETE /api/v1/tenants/{id}/logo", a.deleteLogo},
		{"POST /api/v1/users", a.createUser},
		{"GET /api/v1/users", a.listUsers},
		{"GET /api/v1/users/{id}", a.getUser},
		{"PATCH /api/v1/users/{id}", a.patchUser},
		{"DELETE /api/v1/users/{id}", a.deleteUser},
		{"POST /api/v1/users/{id}/password", a.setPassword},
		{"DELETE /api/v1/users/{id}/totp", a.resetTOTP},
		{"POST /api/v1/apikeys", a.createKey},
		{"GET /api/v1/apikeys", a.listKeys},
		{"DELETE /api/v1/apikeys/{id}", a.revokeKey},
		{"GET /api/v1/discovery/snippet", a.snippet},
		{"POST /api/v1/users/{id}/reauthenticate", a.reauthenticate},
		{"GET /api/v1/push-certificate", a.getPushCert},
		{"PUT /api/v1/push-certificate", a.putPushCert},
		{"POST /api/v1/push-certificate/csr", a.pushCSR},
		{"GET /api/v1/devices", a.listDevices},
		{"GET /api/v1/devices/{id}", a.getDevice},
		{"POST /api/v1/devices/{id}/commands", a.enqueueCommand},
		{"GET /api/v1/devices/{id}/commands", a.deviceCommands},
		{"GET /api/v1/devices/{id}/commands/{uuid}", a.deviceCommand},
		{"POST /api/v1/devices/{id}/push", a.pushDevice},
		{"POST /api/v1/devices/{id}/unenroll", a.unenrollDevice},
		{"POST /api/v1/commands", a.bulkCommand},
		{"GET /api/v1/audit", a.listAudit},
		{"POST /api/v1/webhooks", a.createWebhook},
		{"GET /api/v1/webhooks", a.listWebhooks},
		{"DELETE /api/v1/webhooks/{id}", a.deleteWebhook},
		{"GET /api/v1/webhooks/{id}/deliveries", a.webhookDeliveries},
		{"POST /api/v1/admins", a.createAdmin},
		{"GET /api/v1/admins", a.listAdmins},
		{"POST /api/v1/admins/{id}/reset", a.resetAdmin},
	}, append(a.abmRoutes(), a.profileRoutes()...)...)
}

// Register mounts the API on mux.
func (a *API) Register(mux *http.ServeMux) {
	for _, rt := range a.routes() {
		mux.Handle(rt.pattern, a.authenticated(rt.h))
	}
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(OpenAPI)
	})
	// Anything else under /api/ gets a JSON 404, or a JSON 405 when the
	// path exists with other methods.
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{"GET", "POST", "PATCH", "DELETE", "PUT"} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := mux.Handler(probe); p != "" && p != "/api/" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			sort.Strings(allow)
			w.Header().Set("Allow", strings.Join(allow, ", "))
			httpx.WriteError(w, r, a.Log, problem.Coded(problem.MethodNotAllowed, "method_not_allowed",
				"%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		httpx.WriteError(w, r, a.Log, problem.Coded(problem.NotFound, "not_found", "no API endpoint %s %s", r.Method, r.URL.Path))
	})
}

type principalKey struct{}

// Principal names who made the request ("key:<id>" or "bootstrap").
func Principal(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}

func (a *API) authenticated(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Auth.Check(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			a.Metrics.AdminAuthFails.Inc()
			httpx.WriteError(w, r, a.Log, err)
			return
		}
		ctx := context.WithValue(r.Context(), principalKey{}, p)
		var ra *app.RequestAudit
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			ra = &app.RequestAudit{Entry: store.AuditEntry{At: a.Now().UTC(), Actor: p, Action: r.Pattern, Target: r.PathValue("id"), Remote: r.RemoteAddr}}
			ctx = app.WithRequestAudit(ctx, ra)
		}
		r = r.WithContext(ctx)
		rec := &httpx.StatusRecorder{ResponseWriter: w}
		if err := h(rec, r); err != nil {
			httpx.WriteError(rec, r, a.Log, err)
		}
		if ra != nil {
			a.audit(r, ra, rec.Status)
		}
	})
}

// auditOnSuccess tells the use case r's handler calls that it may write
// the request's audit entry in its own transaction, recording status —
// the status the handler answers when the use case succeeds (see
// app.RequestAudit). The handler must then answer exactly that status
// after a success.
func auditOnSuccess(r *http.Request, status int) {
	if ra := app.RequestAuditFrom(r.Context()); ra != nil {
		ra.Entry.Status = status
	}
}

// auditCreated names the object a create made as the target of its
// audit entry: a create's route has no {id}, and its entry said "-"
// ("POST /api/v1/tenants -") where the object's id belongs.
func auditCreated(r *http.Request, id string) {
	if ra := app.RequestAuditFrom(r.Context()); ra != nil && ra.Entry.Target == "" {
		ra.Entry.Target = id
	}
}

// audit records a change (or an attempted one) in the audit log, unless
// the use case already committed the record with its change. Bodies are
// never recorded: they can hold passwords and keys.
func (a *API) audit(r *http.Request, ra *app.RequestAudit, status int) {
	if status == 0 {
		status = http.StatusOK
	}
	if ra.Written() {
		if ra.Entry.Status == status {
			return
		}
		// Not expected (handlers answer the status they announced): the
		// committed entry says otherwise, so the answer given is recorded
		// too.
		a.Log.Error("audit entry written with the change has another status than the answer",
			"action", ra.Entry.Action, "id", ra.Entry.ID, "recorded", ra.Entry.Status, "answered", status)
	}
	e := ra.Entry
	e.ID, e.Status = 0, status
	// The request may be cancelled by now; the record is still written.
	if err := a.App.Audit.Record(r.Context(), &e); err != nil {
		a.Log.Error("cannot write the audit log", "err", err, "action", e.Action, "actor", e.Actor)
	}
}

// KeyAuth checks admin API keys: stored keys (found by id, secret hash
// compared in constant time) and the optional bootstrap key from the
// command line or environment.
type KeyAuth struct {
	Keys      store.APIKeyStore
	Bootstrap string // empty: none
	Now       func() time.Time
	Log       *slog.Logger
}

// keyChallenge is the WWW-Authenticate value of every 401 (RFC 6750 §3).
const keyChallenge = `Bearer realm="pomona-admin"`

var (
	errNoKey  = &problem.Error{Kind: problem.Unauthenticated, Code: "unauthorized", Message: "missing API key: send \"Authorization: Bearer <key>\"", Challenge: keyChallenge}
	errBadKey = &problem.Error{Kind: problem.Unauthenticated, Code: "unauthorized", Message: "invalid or revoked API key", Challenge: keyChallenge}
)

// touchEvery limits last-used updates to one write per key per minute.
const touchEvery = time.Minute

// Check returns the principal for an Authorization header value.
func (k *KeyAuth) Check(ctx context.Context, header string) (string, error) {
	scheme, key, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return "", errNoKey
	}
	key = strings.TrimSpace(key)
	if k.Bootstrap != "" {
		a, b := sha256.Sum256([]byte(key)), sha256.Sum256([]byte(k.Bootstrap))
		if subtle.ConstantTimeCompare(a[:], b[:]) == 1 {
			return "bootstrap", nil
		}
	}
	id, secret, err := apikey.Parse(key)
	if err != nil {
		return "", errBadKey
	}
	stored, err := k.Keys.APIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Compare anyway so unknown ids take as long as known ones.
		apikey.Match(secret, make([]byte, sha256.Size))
		return "", errBadKey
	}
	if err != nil {
		return "", err
	}
	if !apikey.Match(secret, stored.SecretHash) || !stored.RevokedAt.IsZero() {
		return "", errBadKey
	}
	now := k.Now()
	if now.Sub(stored.LastUsedAt) > touchEvery {
		if err := k.Keys.TouchAPIKey(ctx, id, now); err != nil && k.Log != nil {
			k.Log.Warn("could not record API key use", "key", id, "err", err)
		}
	}
	return "key:" + id, nil
}
