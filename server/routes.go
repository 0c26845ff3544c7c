package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/discovery"
	"github.com/pomona-mdm/pomona/http/api"
	"github.com/pomona-mdm/pomona/http/console"
	"github.com/pomona-mdm/pomona/http/enrollhttp"
	"github.com/pomona-mdm/pomona/http/health"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/http/mdmhttp"
	"github.com/pomona-mdm/pomona/http/pkihttp"
	"github.com/pomona-mdm/pomona/http/scephttp"
	"github.com/pomona-mdm/pomona/http/signin"
	"github.com/pomona-mdm/pomona/http/wellknown"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/store/sqlstore"
	"github.com/pomona-mdm/pomona/version"
	"github.com/prometheus/client_golang/prometheus"
)

// routes mounts every handler on one mux: the device-facing endpoints,
// the admin API and console, and the operations endpoints.
func (s *Server) routes() http.Handler {
	cfg, log := s.cfg, s.log
	mux := http.NewServeMux()

	// Device-facing handlers.
	// Method-less pattern: the handler answers other methods with a JSON 405.
	mux.Handle(discovery.Path, &wellknown.Handler{Tenants: s.Store, BaseURL: s.EnrollURL, Log: log, Metrics: s.Metrics})
	mux.Handle(FallbackDiscoveryPath("{tenant}"), &wellknown.Handler{Tenants: s.Store, BaseURL: s.EnrollURL, Log: log, Metrics: s.Metrics, Fallback: true})
	mux.Handle(EnrollPath("{tenant}"), &enrollhttp.Handler{
		Tenants: s.Store, Auth: s.Auth, Enroll: s.Enroll, PushCert: s.PushCerts.Load, LoginURL: s.LoginURL, Log: log, Metrics: s.Metrics,
		OnProfile: s.events.ProfileIssued,
	})
	signIn := &signin.Handler{
		Tenants: s.Store, Auth: s.Auth, Sealer: s.sealer, Origin: s.PublicURL.Scheme + "://" + s.PublicURL.Host,
		Secure: s.PublicURL.Scheme == "https", Log: log, Metrics: s.Metrics, Now: time.Now,
	}
	mux.Handle(LoginPath("{tenant}"), signIn)
	mux.HandleFunc("GET "+LoginPath("{tenant}")+"/logo", signIn.ServeLogo)
	mux.Handle(SCEPPath, &scephttp.Handler{PKI: s.Issuer, Issuer: s.Enroll, Log: log, Metrics: s.Metrics})
	mux.Handle(CheckInPath, &mdmhttp.Handler{Service: s.MDM, Checkin: true, ClientCertHeader: cfg.ClientCertHeader, TrustedProxies: s.proxies, Log: log, Metrics: s.Metrics, Arrive: s.arrive()})
	mux.Handle(ServerPath, &mdmhttp.Handler{Service: s.MDM, ClientCertHeader: cfg.ClientCertHeader, TrustedProxies: s.proxies, Log: log, Metrics: s.Metrics, Arrive: s.arrive()})

	// Admin and operations.
	(&api.API{
		App: s.App, Log: log, Metrics: s.Metrics,
		Auth:      &api.KeyAuth{Keys: s.Store, Bootstrap: cfg.AdminAPIKey, Now: time.Now, Log: log},
		PublicURL: s.PublicURL.String(), EnrollURL: s.EnrollURL, Version: version.Version(), Now: time.Now,
		SetupURL: s.SetupURL,
	}).Register(mux)
	(&console.Console{
		Admins: s.Admins, App: s.App, Catalog: catalog.Default(), EnrollURL: s.EnrollURL, PublicURL: s.PublicURL.String(),
		Origin: s.PublicURL.Scheme + "://" + s.PublicURL.Host, Secure: s.PublicURL.Scheme == "https", Check: s.discoveryCheck,
		Log: log, Metrics: s.Metrics, Now: time.Now, Version: version.Version(),
	}).Register(mux)
	mux.HandleFunc("GET /healthz", health.Live)
	mux.Handle("GET /readyz", health.Ready(s.Store, log))
	mux.Handle("GET /metrics", s.Metrics.Handler())

	// The revocation status of the CA's certificates, before the mux: an
	// OCSP GET request's base64 may hold "//", which the mux redirects.
	pk := &pkihttp.Handler{Revocation: s.App.Revocation, CACert: s.CA.Cert.Raw, Log: log}
	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, pkihttp.Prefix) {
			pk.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})

	// The client's address (behind trusted proxies) is settled before
	// anything logs, limits or audits it.
	return httpx.RealIP(httpx.Observe(front, log, s.Metrics), s.proxies)
}

// arriver is a store that counts device requests in progress. The store
// openStore opens is a *sqlstore.Store: the assertion below keeps a
// renamed method from silently turning the commit delay off.
type arriver interface{ Arrive() (leave func()) }

var _ arriver = (*sqlstore.Store)(nil)

// arrive is what tells a store that counts device requests in progress
// (SQLite's group commit: sqlstore.Store.Arrive, its commit delay) about
// each request the MDM handlers serve, while the service handles it
// (mdmhttp.Handler.Arrive: not while its body is still arriving); nil for
// other stores.
func (s *Server) arrive() func() (leave func()) {
	if a, ok := s.Store.(arriver); ok {
		return a.Arrive
	}
	return nil
}

// groupCommitMetrics publishes SQLite's group-commit counts
// (sqlstore.Store.GroupCommitCounts): batches run and the transactions in
// them; their ratio is the mean batch size, and the batches with a
// durable write are the fsyncs of the WAL. PostgreSQL's store counts 0.
func (s *Server) groupCommitMetrics() {
	gc, ok := s.Store.(interface{ GroupCommitCounts() (int64, int64) })
	if !ok {
		return
	}
	s.Metrics.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pomona_sqlite_group_commit_batches_total", Help: "SQLite group-commit batches run (each with a durable write: one COMMIT and fsync).",
		}, func() float64 { b, _ := gc.GroupCommitCounts(); return float64(b) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pomona_sqlite_group_commit_transactions_total", Help: "Transactions run in SQLite group-commit batches.",
		}, func() float64 { _, t := gc.GroupCommitCounts(); return float64(t) }),
	)
}
