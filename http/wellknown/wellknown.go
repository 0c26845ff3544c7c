// Package wellknown serves GET /.well-known/com.apple.remotemanagement:
// the first request of account-driven enrollment, which names the
// enrollment server for a user. The decisions are in package discovery;
// this is the thin HTTP side.
//
// Apple: https://developer.apple.com/documentation/devicemanagement/get-.well-known-com.apple.remotemanagement
package wellknown

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/pomona-mdm/pomona/discovery"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// Tenants finds the tenant that owns a domain.
type Tenants interface {
	TenantByDomain(ctx context.Context, domain string) (*store.Tenant, error)
}

// Handler answers discovery requests: 200 with discovery.Response JSON,
// 403 with discovery.Failure JSON (com.apple.well-known.failed) for an
// unknown domain or refused query, 405 for methods other than GET and
// HEAD; a store failure goes through httpx.WriteError.
type Handler struct {
	Tenants Tenants
	// BaseURL is the enrollment URL of a tenant (the tenant is in its path).
	BaseURL func(tenantID string) string
	Log     *slog.Logger
	Metrics *metrics.Metrics
	// Fallback serves one tenant's fallback discovery URL, the one
	// registered with Apple Business Manager (the tenant is the {tenant}
	// path value): Apple redirects a device there with the same query when
	// the company domain does not answer (iOS 18.2, macOS 15.2 and later).
	// It answers like the domain for that tenant's users, and like an
	// unknown domain for everyone else.
	Fallback bool
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpx.WriteError(w, r, h.Log, problem.Coded(problem.MethodNotAllowed, "method_not_allowed", "use GET"))
		return
	}
	req, err := discovery.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.reject(w, r, err.(*discovery.Rejection), "")
		return
	}
	t, err := h.Tenants.TenantByDomain(r.Context(), req.Domain)
	if err == nil && h.Fallback && t.ID != r.PathValue("tenant") {
		// A tenant's fallback URL answers only for its own domains, and
		// exactly as an unknown domain otherwise: it tells neither which
		// tenants exist nor who owns a domain.
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		// The same answer whether or not the user exists: discovery must
		// not tell who has an account.
		h.reject(w, r, discovery.UnknownDomain(req.Domain), req.Email)
		return
	}
	if err != nil {
		h.Metrics.Discovery.WithLabelValues("error").Inc()
		httpx.WriteError(w, r, h.Log, err)
		return
	}
	h.Metrics.Discovery.WithLabelValues("ok").Inc()
	h.Log.Info("discovery", "result", "ok", "domain", req.Domain, "model_family", req.ModelFamily, "tenant", t.ID)
	httpx.WriteJSON(w, http.StatusOK, discovery.Answer(h.BaseURL(t.ID)))
}

func (h *Handler) reject(w http.ResponseWriter, r *http.Request, rej *discovery.Rejection, email string) {
	h.Metrics.Discovery.WithLabelValues(rej.Reason).Inc()
	h.Log.Info("discovery refused", "reason", rej.Reason, "detail", rej.Description, "identifier", email,
		"remote", r.RemoteAddr, "user_agent", r.UserAgent())
	httpx.WriteJSON(w, http.StatusForbidden, rej.Body())
}
