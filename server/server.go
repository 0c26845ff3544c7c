// Package server wires Pomona together: it opens the store, loads the
// sealing key and the CA, builds the services and mounts their handlers.
// Reading New from top to bottom shows every part of the server.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/adminaccount"
	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/auth"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/discovery"
	"github.com/pomona-mdm/pomona/discovery/check"
	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/http/api"
	"github.com/pomona-mdm/pomona/http/console"
	"github.com/pomona-mdm/pomona/http/enrollhttp"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/http/mdmhttp"
	"github.com/pomona-mdm/pomona/http/scephttp"
	"github.com/pomona-mdm/pomona/http/signin"
	"github.com/pomona-mdm/pomona/http/wellknown"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/push/apnsstub"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/renewal"
	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/postgres"
	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/store/sqlstore"
	"github.com/pomona-mdm/pomona/tlscert"
	"github.com/pomona-mdm/pomona/version"
	"github.com/pomona-mdm/pomona/webhook"
)

// TLS modes.
const (
	TLSAuto = "auto" // --tls-cert/--tls-key when given, else a certificate from Pomona's CA
	TLSACME = "acme" // a publicly trusted certificate obtained and renewed by ACME (RFC 8555)
	TLSOff  = "off"  // plain HTTP behind a TLS-terminating proxy
)

// Config is everything `pomona serve` can be told.
type Config struct {
	Listen      string
	PublicURL   string
	DataDir     string
	DB          string // database URL; empty: SQLite in DataDir
	TLS         string // auto, acme or off
	TLSCert     string
	TLSKey      string
	AdminAPIKey string // bootstrap key; empty: none
	SecretKey   string // sealing key; empty: key file in DataDir
	CAKeyType   string
	// Password is the argon2id cost of new password hashes.
	Password        password.Params
	ShutdownTimeout time.Duration
	// AccessTokenTTL is how long a device's access token is valid before
	// the person must sign in again.
	AccessTokenTTL time.Duration
	// ClientCertHeader names the header in which a TLS-terminating proxy
	// forwards the device's client certificate (empty: not trusted). It
	// needs TrustedProxies and is honoured only from them.
	ClientCertHeader string
	// APNsURL is the push endpoint (default Apple's); APNsCAFile adds a CA
	// to trust for it (a local stand-in).
	APNsURL    string
	APNsCAFile string
	// Demo sets up a throwaway tenant, user, push certificate and a local
	// APNs stand-in (docs: README quick start). Never in production.
	Demo bool
	// TrustedProxies lists the proxies (addresses, CIDR prefixes, comma
	// separated) whose X-Forwarded-For names the client; empty: the header
	// is ignored and the direct peer is the client.
	TrustedProxies string
	// DiscoveryResolve makes the console's discovery checks dial
	// host:port at another addr:port (split-horizon DNS; tests).
	DiscoveryResolve map[string]string
	// ConsoleClock is the web console's clock (sessions, TOTP); nil:
	// time.Now. Tests move it to use the next TOTP code at once.
	ConsoleClock func() time.Time
	// ConsoleIdleTimeout ends a web-console session after this long
	// without a request (default 30 minutes).
	ConsoleIdleTimeout time.Duration
	// WebhookBackoff is the first retry delay of a failed webhook delivery
	// (doubling each time, 8 attempts).
	WebhookBackoff time.Duration
	// RenewalWindow: identity certificates are renewed within this long
	// before they expire (default 60 days; docs/lifecycle.md).
	RenewalWindow time.Duration
	// RenewalTimeout: a renewal whose device has not requested its new
	// certificate this long after the InstallProfile counts as failed and
	// is tried again (default 7 days).
	RenewalTimeout time.Duration
	// TombstoneRetention: how long a deleted user's or tenant's devices
	// are still answered com.apple.unrecognized.device (default 90 days;
	// docs/lifecycle.md, "Endings").
	TombstoneRetention time.Duration
	// UnenrollOnDisable: disabling a user also unenrolls their enrolled
	// devices (RemoveProfile queued and the enrollment ended at once, so
	// the device's next request is answered com.apple.unrecognized.device).
	// Off by default: a disabled user's devices stay enrolled.
	UnenrollOnDisable bool
	// Clock is the device-lifecycle clock: enrollment, SCEP issuance,
	// identity checks on the MDM channel, the command queue and renewals
	// (nil: time.Now). End-to-end tests move it across a certificate's
	// lifetime.
	Clock func() time.Time

	// TLSReloadInterval is how often --tls-cert/--tls-key are checked for
	// changes (size, modification time); SIGHUP reloads at once. Default 30 s.
	TLSReloadInterval time.Duration
	// ACME (--tls=acme): the directory URL (default Let's Encrypt), the
	// account's contact e-mail, an optional plain-HTTP listener for
	// HTTP-01 challenges (normally :80; TLS-ALPN-01 is always answered on
	// the HTTPS listener) and a PEM CA file to trust for the directory
	// (a private ACME CA).
	ACMEDirectory  string
	ACMEEmail      string
	ACMEHTTPListen string
	ACMECAFile     string

	// ABMURL is Apple's device-assignment service for the Apple Business
	// Manager connection ("" Apple's; a local stand-in in tests).
	ABMURL string
}

// DefaultConfig is what `pomona serve` uses without flags.
func DefaultConfig() Config {
	return Config{
		Listen:          ":8443",
		PublicURL:       "https://localhost:8443",
		DataDir:         "./pomona-data",
		TLS:             TLSAuto,
		CAKeyType:       string(pki.ECDSAP256),
		Password:        password.Default,
		ShutdownTimeout: 15 * time.Second,
		AccessTokenTTL:  auth.DefaultTokenTTL,
		WebhookBackoff:  10 * time.Second,
	}
}

// Server is a wired Pomona server.
type Server struct {
	cfg       Config
	log       *slog.Logger
	Store     store.Store
	Metrics   *metrics.Metrics
	Directory *directory.Service
	Auth      *auth.Service
	Enroll    *enroll.Service
	MDM       *mdmservice.Channel
	Commands  *app.Commands
	// App is the application layer the API, the console and the jobs call.
	App     *app.App
	Renewal *renewal.Job
	ABM     *abm.Service
	Admins  *adminaccount.Service
	CA      *pki.CA
	Issuer  *pki.Issuer
	pusher  *pusher
	// instance names this process in cluster-wide leases.
	instance  string
	demoAPNs  *apnsstub.Server
	demoABM   *http.Server
	events    *webhook.Publisher
	topics    *mdmservice.TopicCache // the push topic check-ins must carry (server/mdmchannel.go)
	webhooks  *webhook.Dispatcher
	sealer    *seal.Sealer
	PublicURL *url.URL
	handler   http.Handler
	tlsConfig *tls.Config
	certFiles *tlscert.Reloader // --tls-cert/--tls-key, reloaded on change and SIGHUP
	unlock    func()            // releases the SQLite store's lock (a no-op for PostgreSQL)
	acme      *tlscert.ACME     // --tls=acme
	notes     startup
}

// startup collects what New learned, for the start-up summary.
type startup struct {
	storeDesc    string
	caCreated    bool
	keyCreated   bool
	firstAPIKey  string // shown once
	ownerSetup   string // first owner's console setup link, shown once
	pendingOwner string // id of the first owner when no console account is set up yet (later starts)
	tlsDesc      string
	caFile       string
	devTLS       bool
	sealKeyDesc  string
	tenants      int
	users        int
	publicHTTP   bool
	bootstrapKey bool
	push         *pushcert.Cert
	pushErr      error
	demo         bool
	demoDir      string
	demoABM      string // the demo tenant's ABM server token
	abm          string
	abmProblems  []string
}

// New opens everything cfg names and wires the HTTP handler. Close
// releases it.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log, instance: directory.NewID("inst")}
	pub, err := parsePublicURL(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	s.PublicURL = pub
	s.notes.publicHTTP = pub.Scheme != "https"
	if cfg.TLS != TLSAuto && cfg.TLS != TLSACME && cfg.TLS != TLSOff {
		return nil, fmt.Errorf("--tls must be %q, %q or %q, not %q", TLSAuto, TLSACME, TLSOff, cfg.TLS)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	proxies, err := httpx.ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	if cfg.ClientCertHeader != "" && len(proxies) == 0 {
		return nil, fmt.Errorf("--client-cert-header %s needs --trusted-proxies: name the TLS-terminating proxy that sets it (e.g. --trusted-proxies 10.0.0.5), or the header would be taken from anyone", cfg.ClientCertHeader)
	}
	kt, err := pki.ParseKeyType(cfg.CAKeyType)
	if err != nil {
		return nil, fmt.Errorf("--ca-key-type: %w", err)
	}

	// Storage.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the data directory %s: %w (choose another with --data)", cfg.DataDir, err)
	}
	if err := checkDemoDir(cfg); err != nil {
		return nil, err
	}
	s.Store, s.notes.storeDesc, s.unlock, err = openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.Store.Close()
			s.unlock()
		}
	}()

	// Secrets at rest.
	sealer, desc, created, err := loadSealer(cfg)
	if err != nil {
		return nil, err
	}
	s.notes.sealKeyDesc, s.notes.keyCreated = desc, created
	s.sealer = sealer
	s.CA, s.notes.caCreated, err = pki.LoadOrCreateCA(ctx, s.Store, sealer, kt, time.Now())
	if err != nil {
		if errors.Is(err, seal.ErrWrongKey) {
			return nil, fmt.Errorf("the CA in the database was sealed with another key: start with the original POMONA_SECRET_KEY or %s", filepath.Join(cfg.DataDir, "secret.key"))
		}
		return nil, err
	}
	s.notes.caFile = filepath.Join(cfg.DataDir, "ca.pem")
	if err := os.WriteFile(s.notes.caFile, pki.CertPEM(s.CA.Cert), 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", s.notes.caFile, err)
	}

	s.Issuer, err = pki.LoadIssuer(ctx, s.Store, sealer, s.CA, time.Now())
	if err != nil {
		return nil, err
	}

	// TLS.
	if err := s.setupTLS(ctx, sealer); err != nil {
		return nil, err
	}

	// Admin API keys: the first start creates one and shows it once.
	if cfg.AdminAPIKey != "" {
		s.notes.bootstrapKey = true
	} else if n, err := s.Store.CountAPIKeys(ctx); err != nil {
		return nil, err
	} else if n == 0 {
		k, rec := app.NewKey("first-start", time.Now())
		if err := s.Store.CreateAPIKey(ctx, rec); err != nil {
			return nil, err
		}
		s.notes.firstAPIKey = k
	}
	s.notes.tenants, _ = s.Store.CountTenants(ctx)
	s.notes.users, _ = s.Store.CountUsers(ctx)
	s.notes.push, s.notes.pushErr = s.LoadPushCert(ctx)

	// Services.
	s.Metrics = metrics.New()
	s.pushChanged(s.notes.push)
	s.Directory = directory.New(s.Store)
	s.Directory.Password = cfg.Password
	s.Auth = auth.New(s.Store, sealer, cfg.Password)
	if cfg.AccessTokenTTL > 0 {
		s.Auth.TokenTTL = cfg.AccessTokenTTL
	}
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	s.Enroll = &enroll.Service{
		Store: s.Store, Issuer: s.Issuer, Now: clock, Renewed: s.identityRenewed,
		URLs:          enroll.URLs{ServerURL: s.url(ServerPath), CheckInURL: s.url(CheckInPath), SCEPURL: s.url(SCEPPath)},
		TrustCA:       s.notes.devTLS,
		ProfilePrefix: enroll.ProfilePrefix(s.PublicURL.Hostname()),
	}

	s.events = &webhook.Publisher{Store: s.Store, Log: log, Now: time.Now}
	backoff := cfg.WebhookBackoff
	if backoff <= 0 {
		backoff = 10 * time.Second
	}
	s.webhooks = &webhook.Dispatcher{Store: s.Store, Opener: sealer, HTTP: &http.Client{Timeout: 15 * time.Second}, Log: log, Now: time.Now,
		Backoff: backoff, MaxAttempts: 8, Interval: min(time.Second, backoff)}
	s.ABM = s.newABM()
	s.MDM = s.newMDMChannel(log, clock)
	s.pusher, err = newPusher(s, cfg.APNsURL, cfg.APNsCAFile)
	if err != nil {
		return nil, err
	}
	s.App = app.New(s.Store, app.Config{Directory: s.Directory, Catalog: catalog.Default(), Pusher: s.pusher, PushCerts: pushStore{s},
		Sealer: sealer, Lifecycle: clock, Now: time.Now, Log: log})
	s.Commands = s.App.Commands
	if cfg.UnenrollOnDisable {
		s.Directory.Disabled = s.unenrollDisabled
	}
	s.Renewal = &renewal.Job{Store: s.Store, Enroll: s.Enroll, Commands: s.Commands, Topic: s.pushTopic, Window: cfg.RenewalWindow,
		Timeout: cfg.RenewalTimeout, Now: clock, Log: log, Notify: s.renewalEvent}
	s.connectABM()
	s.Admins = adminaccount.New(s.Store, sealer, cfg.Password)
	s.App.Accounts.Service = s.Admins
	if cfg.ConsoleClock != nil {
		s.Admins.Now = cfg.ConsoleClock
	}
	if cfg.ConsoleIdleTimeout > 0 {
		s.Admins.IdleTimeout = cfg.ConsoleIdleTimeout
	}
	if tok, err := s.Admins.InviteFirstOwner(ctx); err != nil {
		return nil, err
	} else if tok != "" {
		s.notes.ownerSetup = s.SetupURL(tok)
	} else if all, err := s.Store.Admins(ctx); err == nil {
		// The first start's link was shown once: say how to get a new one
		// while nobody has finished setting up a console account.
		pending := ""
		for _, a := range all {
			if a.PasswordHash != "" {
				pending = ""
				break
			}
			if a.Role == store.RoleOwner && pending == "" {
				pending = a.ID
			}
		}
		s.notes.pendingOwner = pending
	}
	if cfg.Demo {
		if err := s.setupDemo(ctx); err != nil {
			return nil, err
		}
		s.notes.tenants, _ = s.Store.CountTenants(ctx)
		s.notes.users, _ = s.Store.CountUsers(ctx)
	}
	s.notes.abm, s.notes.abmProblems = s.abmNotes(ctx)

	// Device-facing handlers.
	mux := http.NewServeMux()
	// Method-less pattern: the handler answers other methods with a JSON 405.
	mux.Handle(discovery.Path, &wellknown.Handler{Tenants: s.Store, BaseURL: s.EnrollURL, Log: log, Metrics: s.Metrics})
	mux.Handle(FallbackDiscoveryPath("{tenant}"), &wellknown.Handler{Tenants: s.Store, BaseURL: s.EnrollURL, Log: log, Metrics: s.Metrics, Fallback: true})
	mux.Handle(EnrollPath("{tenant}"), &enrollhttp.Handler{
		Tenants: s.Store, Auth: s.Auth, Enroll: s.Enroll, PushCert: s.LoadPushCert, LoginURL: s.LoginURL, Log: log, Metrics: s.Metrics,
		OnProfile: func(ctx context.Context, e *store.Enrollment) {
			s.events.Publish(ctx, "enrollment.profile_issued", map[string]any{"device": e.ID, "tenant_id": e.TenantID, "user_id": e.UserID,
				"platform": e.Platform, "product": e.Product, "device_signature": e.DeviceSignature})
		},
	})
	signIn := &signin.Handler{
		Tenants: s.Store, Auth: s.Auth, Sealer: sealer, Origin: s.PublicURL.Scheme + "://" + s.PublicURL.Host,
		Secure: s.PublicURL.Scheme == "https", Log: log, Metrics: s.Metrics, Now: time.Now,
	}
	mux.Handle(LoginPath("{tenant}"), signIn)
	mux.HandleFunc("GET "+LoginPath("{tenant}")+"/logo", signIn.ServeLogo)
	mux.Handle(SCEPPath, &scephttp.Handler{PKI: s.Issuer, Issuer: s.Enroll, Log: log, Metrics: s.Metrics})
	mux.Handle(CheckInPath, &mdmhttp.Handler{Service: s.MDM, Checkin: true, ClientCertHeader: cfg.ClientCertHeader, TrustedProxies: proxies, Log: log, Metrics: s.Metrics})
	mux.Handle(ServerPath, &mdmhttp.Handler{Service: s.MDM, ClientCertHeader: cfg.ClientCertHeader, TrustedProxies: proxies, Log: log, Metrics: s.Metrics})

	// Admin and operations.
	(&api.API{
		App: s.App, Log: log, Metrics: s.Metrics,
		Auth:      &api.KeyAuth{Keys: s.Store, Bootstrap: cfg.AdminAPIKey, Now: time.Now, Log: log},
		PublicURL: s.PublicURL.String(), EnrollURL: s.EnrollURL, Version: version.Version(), Now: time.Now,
		SetupURL: s.SetupURL,
	}).Register(mux)
	(&console.Console{
		Admins: s.Admins, App: s.App, Catalog: catalog.Default(), EnrollURL: s.EnrollURL, PublicURL: s.PublicURL.String(), Origin: s.PublicURL.Scheme + "://" + s.PublicURL.Host,
		Secure: s.PublicURL.Scheme == "https", Check: s.discoveryCheck, Log: log, Metrics: s.Metrics, Now: time.Now, Version: version.Version(),
	}).Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.Store.Ping(ctx); err != nil {
			log.Error("readiness: store unreachable", "err", err)
			httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "store unreachable"})
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready", "store": s.Store.Backend()})
	})
	mux.Handle("GET /metrics", s.Metrics.Handler())
	// The client's address (behind trusted proxies) is settled before
	// anything logs, limits or audits it.
	s.handler = httpx.RealIP(httpx.Observe(mux, log, s.Metrics), proxies)
	ok = true
	return s, nil
}

// Paths of the device-facing endpoints. Tenants are in paths, never in
// queries (the device replaces the query of the sign-in URL).
const (
	SCEPPath    = "/scep"
	CheckInPath = "/mdm/checkin"
	ServerPath  = "/mdm/connect"
)

// EnrollPath is the path of a tenant's enrollment endpoint, the BaseURL
// discovery hands out.
func EnrollPath(tenantID string) string { return "/enroll/" + tenantID }

// LoginPath is the path of a tenant's sign-in page (the apple-as-web URL).
func LoginPath(tenantID string) string { return "/login/" + tenantID }

func (s *Server) url(path string) string { return strings.TrimRight(s.PublicURL.String(), "/") + path }

// LoginURL is the absolute sign-in URL of a tenant.
func (s *Server) LoginURL(tenantID string) string { return s.url(LoginPath(tenantID)) }

// LoadPushCert returns the current push certificate.
func (s *Server) LoadPushCert(ctx context.Context) (*pushcert.Cert, error) {
	return pushcert.Load(ctx, s.Store, s.sealer)
}

func (s *Server) pushChanged(c *pushcert.Cert) {
	if s.topics != nil {
		s.topics.Invalidate()
	}
	if c == nil {
		s.Metrics.PushCertExpiry.Set(0)
		return
	}
	s.Metrics.PushCertExpiry.Set(float64(c.Cert.NotAfter.Unix()))
}

// pushStore adapts the server to the application layer's push-certificate
// needs (app.PushCertStore).
type pushStore struct{ s *Server }

func (p pushStore) Load(ctx context.Context) (*pushcert.Cert, error) { return p.s.LoadPushCert(ctx) }
func (p pushStore) Save(ctx context.Context, c *pushcert.Cert) error {
	return pushcert.Save(ctx, p.s.Store, p.s.sealer, c)
}
func (p pushStore) SaveCSRKey(ctx context.Context, c *pushcert.Cert) error {
	return pushcert.SaveCSRKey(ctx, p.s.Store, p.s.sealer, c.Key)
}
func (p pushStore) Changed(c *pushcert.Cert) { p.s.pushChanged(c) }

// EnrollURL is the absolute enrollment URL of a tenant.
func (s *Server) EnrollURL(tenantID string) string {
	return strings.TrimRight(s.PublicURL.String(), "/") + EnrollPath(tenantID)
}

// SetupURL is the console's one-time setup link for token.
func (s *Server) SetupURL(token string) string { return console.SetupLink(s.PublicURL.String(), token) }

// ConsoleURL is where administrators sign in.
func (s *Server) ConsoleURL() string { return s.url(console.Prefix + "/") }

// OwnerSetupURL is the first owner's setup link created at this start ("" otherwise).
func (s *Server) OwnerSetupURL() string { return s.notes.ownerSetup }

func (s *Server) discoveryCheck(ctx context.Context, o check.Options) *check.Report {
	o.Resolve = s.cfg.DiscoveryResolve
	if s.notes.devTLS {
		o.RootCAs = x509.NewCertPool()
		o.RootCAs.AddCert(s.CA.Cert)
	}
	return check.Run(ctx, o)
}

// Handler is the whole HTTP surface.
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig is nil when serving plain HTTP.
func (s *Server) TLSConfig() *tls.Config { return s.tlsConfig }

// FirstAPIKey is the key created on first start ("" otherwise).
func (s *Server) FirstAPIKey() string { return s.notes.firstAPIKey }

func (s *Server) Close() error {
	if s.demoAPNs != nil {
		s.demoAPNs.Close()
	}
	if s.demoABM != nil {
		s.demoABM.Close()
	}
	err := s.Store.Close()
	s.unlock()
	return err
}

func parsePublicURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("--public-url %q must be an absolute URL such as https://mdm.example.com", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--public-url %q must not have a query or fragment", raw)
	}
	return u, nil
}

// openStore opens the store cfg names. A SQLite store is locked for as
// long as the server runs (unlock releases it), so `pomona restore` can
// refuse to overwrite it and two servers cannot share the file.
func openStore(ctx context.Context, cfg Config) (st store.Store, desc string, unlock func(), err error) {
	dbURL := cfg.DB
	if dbURL == "" {
		dbURL = "sqlite://" + filepath.Join(cfg.DataDir, "pomona.db")
	}
	unlock = func() {}
	if path, ok := SQLitePath(dbURL); ok {
		if unlock, err = sqlite.Lock(path); err != nil {
			if errors.Is(err, sqlite.ErrLocked) {
				return nil, "", nil, fmt.Errorf("%w: another `pomona serve` uses %s (stop it, or give this one another --data)", err, path)
			}
			return nil, "", nil, err
		}
	}
	sst, desc, err := OpenDB(ctx, dbURL)
	if err != nil {
		unlock()
		return nil, "", nil, err
	}
	return sst, desc, unlock, nil
}

// SQLitePath is the file of a sqlite:// (or sqlite:) database URL; ok is
// false for other URLs.
func SQLitePath(dbURL string) (path string, ok bool) {
	if !strings.HasPrefix(dbURL, "sqlite:") {
		return "", false
	}
	return strings.TrimPrefix(strings.TrimPrefix(dbURL, "sqlite:"), "//"), true
}

// OpenDB opens a store by URL: sqlite://<path> (or sqlite:<path>) or
// postgres://…, applying pending migrations. desc names it for output.
func OpenDB(ctx context.Context, dbURL string) (st *sqlstore.Store, desc string, err error) {
	switch {
	case strings.HasPrefix(dbURL, "sqlite:"):
		path, _ := SQLitePath(dbURL)
		st, err = sqlite.Open(ctx, path)
		if err != nil {
			return nil, "", fmt.Errorf("cannot open the SQLite store: %w", err)
		}
		desc = "sqlite " + path
	case strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://"):
		st, err = postgres.Open(ctx, dbURL)
		if err != nil {
			return nil, "", err
		}
		desc = "postgres " + postgres.Redact(dbURL)
	default:
		return nil, "", fmt.Errorf("--db %q: use sqlite://<path> or postgres://user:password@host/db (or leave it empty for the SQLite file in --data)", dbURL)
	}
	v, _ := st.SchemaVersion(ctx)
	return st, fmt.Sprintf("%s (schema v%d)", desc, v), nil
}

func loadSealer(cfg Config) (*seal.Sealer, string, bool, error) {
	if cfg.SecretKey != "" {
		key, err := seal.ParseKey(cfg.SecretKey)
		if err != nil {
			return nil, "", false, fmt.Errorf("POMONA_SECRET_KEY: %w (make one with: openssl rand -base64 32)", err)
		}
		s, err := seal.New(key)
		return s, "from POMONA_SECRET_KEY", false, err
	}
	path := filepath.Join(cfg.DataDir, "secret.key")
	key, created, err := seal.LoadOrCreateKeyFile(path)
	if err != nil {
		return nil, "", false, fmt.Errorf("sealing key: %w", err)
	}
	s, err := seal.New(key)
	return s, "from " + path, created, err
}

func (s *Server) setupTLS(ctx context.Context, sealer *seal.Sealer) error {
	cfg := s.cfg
	switch {
	case cfg.TLS == TLSOff:
		if cfg.TLSCert != "" {
			return errors.New("--tls=off and --tls-cert contradict each other")
		}
		s.notes.tlsDesc = "off (plain HTTP: put a TLS-terminating proxy in front)"
		return nil
	case cfg.TLS == TLSACME:
		if cfg.TLSCert != "" {
			return errors.New("--tls=acme obtains the certificate itself: leave out --tls-cert/--tls-key")
		}
		ac := tlscert.ACMEConfig{Host: s.PublicURL.Hostname(), Directory: cfg.ACMEDirectory, Email: cfg.ACMEEmail,
			Cache: &tlscert.SealedCache{Secrets: s.Store, Sealer: sealer, IsNotFound: func(err error) bool { return errors.Is(err, store.ErrNotFound) }}}
		if cfg.ACMECAFile != "" {
			pool, err := tlscert.ReadCAFile(cfg.ACMECAFile)
			if err != nil {
				return fmt.Errorf("--acme-ca-file: %w", err)
			}
			ac.RootCAs = pool
		}
		a, err := tlscert.NewACME(ac)
		if err != nil {
			return err
		}
		s.acme, s.tlsConfig = a, a.TLSConfig()
		dir := cfg.ACMEDirectory
		if dir == "" {
			dir = tlscert.LetsEncrypt
		}
		s.notes.tlsDesc = fmt.Sprintf("ACME certificate for %s from %s (TLS-ALPN-01 on this listener", ac.Host, dir)
		if cfg.ACMEHTTPListen != "" {
			s.notes.tlsDesc += ", HTTP-01 on " + cfg.ACMEHTTPListen
		}
		s.notes.tlsDesc += "; renewed automatically)"
		return nil
	case cfg.TLSCert != "":
		r, err := tlscert.NewReloader(cfg.TLSCert, cfg.TLSKey, s.log)
		if err != nil {
			return fmt.Errorf("cannot load --tls-cert/--tls-key: %w", err)
		}
		s.certFiles = r
		s.tlsConfig = &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12}
		s.notes.tlsDesc = fmt.Sprintf("certificate from %s (valid until %s; reloaded when the files change or on SIGHUP)", cfg.TLSCert, r.Leaf().NotAfter.Format("2006-01-02"))
		return nil
	}
	host := s.PublicURL.Hostname()
	cert, key, err := pki.ServerCert(ctx, s.Store, sealer, s.CA, host, time.Now())
	if err != nil {
		return err
	}
	s.tlsConfig = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw, s.CA.Cert.Raw}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}
	s.notes.devTLS = true
	s.notes.tlsDesc = fmt.Sprintf("development certificate for %s from Pomona's CA (valid until %s)", host, cert.NotAfter.Format("2006-01-02"))
	return nil
}

// Run serves until ctx is cancelled (SIGTERM, SIGINT), then shuts down
// gracefully, letting requests in flight finish.
func (s *Server) Run(ctx context.Context, ln net.Listener, out io.Writer) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if s.tlsConfig != nil {
		srv.TLSConfig = s.tlsConfig
		ln = tls.NewListener(ln, s.tlsConfig)
	}
	var acmeHTTP *http.Server
	if s.acme != nil && s.cfg.ACMEHTTPListen != "" {
		hl, err := net.Listen("tcp", s.cfg.ACMEHTTPListen)
		if err != nil {
			return fmt.Errorf("--acme-http-listen %s: %w", s.cfg.ACMEHTTPListen, err)
		}
		acmeHTTP = &http.Server{Handler: s.acme.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
		go acmeHTTP.Serve(hl)
		defer acmeHTTP.Close()
	}
	// SIGHUP (systemctl reload, certbot's deploy hook) reloads the
	// certificate files at once; otherwise they are checked every
	// interval. Without files SIGHUP is logged, never fatal (its default).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if s.certFiles != nil {
		every := s.cfg.TLSReloadInterval
		if every <= 0 {
			every = 30 * time.Second
		}
		go s.certFiles.Watch(ctx, every, hup)
	} else {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					s.log.Info("SIGHUP: nothing to reload (only --tls-cert/--tls-key files are reloaded)")
				}
			}
		}()
	}
	s.printStartup(out, ln.Addr())
	if s.acme != nil {
		// Obtain the certificate now rather than during a device's first
		// handshake (the listener below answers the TLS-ALPN-01 challenge).
		go func() {
			leaf, err := s.acme.Prefetch()
			if ctx.Err() != nil {
				return // stopped meanwhile: nothing to report
			}
			if err != nil {
				s.log.Error("ACME: no certificate yet (retried at the next handshake)", "err", err)
				return
			}
			s.log.Info("ACME: certificate ready", "subject", leaf.Subject.CommonName, "issuer", leaf.Issuer.CommonName, "not_after", leaf.NotAfter.Format(time.RFC3339))
		}()
	}
	go s.watchPushCert(ctx)
	go s.webhooks.Run(ctx)
	go s.repush(ctx)
	go s.renewals(ctx)
	go s.purgeTombstones(ctx)
	go s.abmJobs(ctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing requests in flight", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

func (s *Server) printStartup(out io.Writer, addr net.Addr) {
	n := s.notes
	scheme := "https"
	if s.tlsConfig == nil {
		scheme = "http"
	}
	p := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	p("Pomona %s", version.Version())
	p("  listening    %s://%s", scheme, addr)
	p("  public URL   %s", s.PublicURL)
	p("  discovery    %s%s", s.PublicURL, discovery.Path)
	p("  TLS          %s", n.tlsDesc)
	p("  store        %s", n.storeDesc)
	p("  sealing key  %s", n.sealKeyDesc)
	p("  CA           %s (%s)", n.caFile, map[bool]string{true: "created now", false: "existing"}[n.caCreated])
	p("  tenants      %d", n.tenants)
	p("  users        %d", n.users)
	if n.push != nil {
		p("  push cert    %s, expires %s", n.push.Topic, n.push.Cert.NotAfter.Format("2006-01-02"))
	} else {
		p("  push cert    none")
	}
	p("  ABM          %s", n.abm)
	p("  console      %s", s.ConsoleURL())
	p("  health       %s/healthz  %s/readyz  metrics: %s/metrics", s.PublicURL, s.PublicURL, s.PublicURL)
	var next []string
	if n.demo {
		p("")
		p("  DEMO MODE (never use it for real devices): tenant %s, user %s, password %s,", DemoDomain, DemoUser, DemoPassword)
		p("  a push certificate that is not Apple's, and pushes go to a local APNs stand-in.")
		p("  The demo's data is in %s, apart from a deployment's (delete it when done).", n.demoDir)
		p("  Try it:  export POMONA_DATA=%s", n.demoDir)
		p("           pomona sim enroll --user %s --password %s --server %s --poll 30s", DemoUser, DemoPassword, s.PublicURL)
		p("  then, in another terminal (same POMONA_DATA):  pomona device list; pomona device command <id> '{\"request_type\":\"DeviceInformation\",\"queries\":[\"OSVersion\"]}'")
		if n.demoABM != "" {
			p("  The demo tenant has a server token from a local Apple Business Manager stand-in (%s): to play a device under", n.demoABM)
			p("  \"Managed devices only\", pomona abm token cert %s --out abm.pem, then add --managed-devices-only abm.pem to sim enroll.", n.demoABM)
		}
	}
	if n.firstAPIKey != "" {
		p("")
		p("  Admin API key (shown once, only its hash is stored):")
		p("    %s", n.firstAPIKey)
		next = append(next, "save the admin API key now: export POMONA_API_KEY="+n.firstAPIKey)
	}
	if n.ownerSetup != "" {
		p("")
		p("  Web console: no account yet. Open this one-time link to set up the first owner (valid 72 h):")
		p("    %s", n.ownerSetup)
		next = append(next, "set up the first console owner with the link above (or later: pomona admin create --email you@example.com)")
	} else if n.pendingOwner != "" {
		next = append(next, "no web-console account is set up yet: open the setup link the first start printed (valid 72 h), or print a new one: pomona admin reset "+n.pendingOwner)
	}
	if n.keyCreated {
		next = append(next, "back up "+strings.TrimPrefix(n.sealKeyDesc, "from ")+": without it the CA and other sealed secrets cannot be read")
	}
	if n.devTLS {
		next = append(next, fmt.Sprintf("trust the development CA for local tools: curl --cacert %s %s/healthz (the CLI finds it in --data by itself); real devices need a publicly trusted certificate: --tls=acme, --tls-cert/--tls-key, or --tls=off behind a TLS proxy (docs/deployment.md)", n.caFile, s.PublicURL))
	}
	if n.push == nil {
		next = append(next, "no APNs push certificate yet: enrollment answers 503 until one is imported. pomona push-cert csr, have it signed at Apple's push certificates portal, then pomona push-cert import (docs/push-certificate.md)")
	} else {
		for _, p := range n.push.Problems(time.Now()) {
			next = append(next, p)
		}
	}
	next = append(next, n.abmProblems...)
	if n.publicHTTP {
		next = append(next, "--public-url is http: Apple devices only enroll over https")
	}
	if n.tenants == 0 {
		next = append(next, `no tenant yet: pomona tenant add "Example Corp" --domain example.com`)
	} else if n.users == 0 {
		next = append(next, "no users yet: pomona user add alice@<domain> --name 'Alice' (or pomona user import users.csv)")
	}
	if n.tenants > 0 {
		next = append(next, "point each company domain's /.well-known/ at this server: pomona discovery snippet nginx --domain <domain>, then pomona discovery check <domain>")
	}
	if len(next) > 0 {
		p("")
		p("Next steps:")
		for _, x := range next {
			p("  - %s", x)
		}
	}
	s.log.Info("listening", "addr", addr.String(), "public_url", s.PublicURL.String(), "tls", n.tlsDesc, "store", n.storeDesc)
}

// watchPushCert repeats the push certificate's warnings (expiry from 30
// days ahead) in the log twice a day and keeps the expiry metric current
// when another instance imported a new certificate.
func (s *Server) watchPushCert(ctx context.Context) {
	s.every(ctx, 12*time.Hour, 12*time.Hour, func(ctx context.Context) {
		c, err := s.LoadPushCert(ctx)
		if err != nil {
			s.pushChanged(nil)
		} else {
			s.pushChanged(c)
		}
		// Every instance keeps its metric current; one warns per interval.
		if !s.leased(ctx, "push-cert-warnings", 11*time.Hour) {
			return
		}
		if err != nil {
			s.log.Warn("no usable APNs push certificate", "err", err)
			return
		}
		for _, p := range c.Problems(time.Now()) {
			s.log.Warn("push certificate: " + p)
		}
	})
}

// every runs fn after first, then every interval, until ctx ends.
func (s *Server) every(ctx context.Context, first, interval time.Duration, fn func(context.Context)) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(interval)
		fn(ctx)
	}
}

// leased reports whether this instance holds the cluster-wide lease name
// for ttl (periodic jobs run on one instance per interval).
func (s *Server) leased(ctx context.Context, name string, ttl time.Duration) bool {
	ok, err := s.Store.TryLease(ctx, name, s.instance, ttl, time.Now())
	return err == nil && ok
}

// deviceEvent turns MDM channel events into webhook events.
func (s *Server) deviceEvent(ctx context.Context, e mdmservice.Event) {
	data := map[string]any{"device": e.Enrollment.ID, "enrollment_id": e.Enrollment.AppleEnrollmentID, "tenant_id": e.Enrollment.TenantID,
		"user_id": e.Enrollment.UserID, "platform": e.Enrollment.Platform, "channel": e.ChannelID}
	switch e.Kind {
	case "unknown-result":
		s.Metrics.Commands.WithLabelValues("result-unknown-command").Inc()
		return
	case "identity-expired":
		s.Metrics.Renewals.WithLabelValues("expired").Inc()
	}
	name := map[string]string{"authenticate": "device.authenticated", "token-update": "device.token_update", "checkout": "device.checked_out", "result": "command.result",
		"identity-expired": "device.identity_expired"}[e.Kind]
	if name == "" {
		return
	}
	if e.Kind == "result" {
		data["command_uuid"], data["request_type"], data["status"] = e.CommandUUID, e.RequestType, e.Status
		s.Metrics.Commands.WithLabelValues("result-" + e.Status).Inc()
		if e.RequestType == "InstallProfile" {
			s.Renewal.Result(ctx, e.CommandUUID, e.Status, e.Result)
		}
	}
	s.events.Publish(ctx, name, data)
}

// Re-push: a device that has not come for its commands is woken again.
const (
	repushWaiting = 5 * time.Minute  // commands waiting this long
	repushEvery   = 15 * time.Minute // at most one re-push per channel this often
)

func (s *Server) repush(ctx context.Context) {
	s.every(ctx, time.Minute, time.Minute, func(ctx context.Context) {
		// One instance of a cluster re-pushes per interval.
		if !s.leased(ctx, "repush", 50*time.Second) {
			return
		}
		now := time.Now()
		chs, err := s.Store.WaitingChannels(ctx, now.Add(-repushWaiting), now.Add(-repushEvery), 1000)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("re-push: cannot list waiting channels", "err", err)
			}
			return
		}
		if len(chs) > 0 {
			s.log.Info("re-pushing devices with waiting commands", "channels", len(chs))
			s.pusher.PushNow(ctx, chs)
		}
	})
}
