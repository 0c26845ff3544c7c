// Package server wires Pomona together, like a main function: it opens
// the store, loads the sealing key and the CA, builds the services with
// their stores, clocks and hooks, and mounts their handlers. It holds no
// rules of its own; those live in the packages it connects (the list is in
// docs/architecture.md). Reading New from top to bottom shows every part
// of the server.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/adminaccount"
	"github.com/pomona-mdm/pomona/apikey"
	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/auth"
	"github.com/pomona-mdm/pomona/demo"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/endings"
	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/http/pkihttp"
	"github.com/pomona-mdm/pomona/jobs"
	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/profiles"
	"github.com/pomona-mdm/pomona/push"
	"github.com/pomona-mdm/pomona/push/apnsstub"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/renewal"
	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/open"
	"github.com/pomona-mdm/pomona/tlscert"
	"github.com/pomona-mdm/pomona/webhook"
)

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
	// ABM is the Apple Business Manager connection (server tokens,
	// GetToken, fallback discovery).
	ABM        *abm.Service
	Tombstones *endings.Tombstones
	Admins     *adminaccount.Service
	PushCerts  *pushcert.Stored
	CA         *pki.CA
	Issuer     *pki.Issuer
	pusher     *push.Pusher
	jobs       *jobs.Runner // periodic jobs, leased per cluster
	demoAPNs   *apnsstub.Server
	demoABM    *http.Server // the demo's ABM stand-in
	events     *webhook.Publisher
	webhooks   *webhook.Dispatcher
	sealer     *seal.Sealer
	PublicURL  *url.URL
	proxies    []netip.Prefix // --trusted-proxies
	handler    http.Handler
	tlsConfig  *tls.Config
	certFiles  *tlscert.Reloader      // --tls-cert/--tls-key, reloaded on change and SIGHUP
	unlock     func()                 // releases the SQLite store's lock (a no-op for PostgreSQL)
	acme       *tlscert.ACME          // --tls=acme
	topics     *mdmservice.TopicCache // the push topic check-ins must carry (mdmchannel.go)
	notes      startup

	// ProfileJob reconciles configuration profiles (server/profiles.go;
	// the use cases are App.Profiles).
	ProfileJob *profiles.Job
	// Reenroll and Silence are the enrollment lifecycle's jobs (package
	// lifecycle).
	Reenroll *lifecycle.Reenrollment
	Silence  *lifecycle.Silence
}

// New opens everything cfg names and wires the HTTP handler. Close
// releases it.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log}
	kt, err := s.checkConfig()
	if err != nil {
		return nil, err
	}

	// Storage, secrets at rest, the CA and SCEP issuer, TLS.
	if err := s.openStore(ctx); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if err := s.loadKeys(ctx, kt); err != nil {
		return nil, err
	}
	if err := s.setupTLS(ctx); err != nil {
		return nil, err
	}

	// Services.
	clock := orNow(cfg.Clock)
	s.Metrics = metrics.New()
	s.groupCommitMetrics()
	s.jobs = &jobs.Runner{Leases: s.Store, Instance: directory.NewID("inst")}
	s.events = &webhook.Publisher{Store: s.Store, Log: log, Now: time.Now}
	s.webhooks = webhook.NewDispatcher(s.Store, s.sealer, cfg.WebhookBackoff, log)
	s.PushCerts = &pushcert.Stored{Secrets: s.Store, Sealer: s.sealer, OnExpiry: s.pushChanged}
	s.pusher = &push.Pusher{Certs: s.PushCerts.Load, Results: s.Store, Metrics: s.Metrics, Log: log, URL: cfg.APNsURL}
	if cfg.APNsCAFile != "" {
		if s.pusher.RootCAs, err = tlscert.ReadCAFile(cfg.APNsCAFile); err != nil {
			return nil, fmt.Errorf("--apns-ca-file: %w", err)
		}
	}
	s.Directory = directory.New(s.Store)
	s.Directory.Password = cfg.Password
	s.Auth = auth.New(s.Store, s.sealer, cfg.Password)
	if cfg.AccessTokenTTL > 0 {
		s.Auth.TokenTTL = cfg.AccessTokenTTL
	}
	// User certificates of profiles name where their revocation status is
	// published (http/pkihttp); identity certificates do not: only Pomona
	// checks them, against its store.
	s.Issuer.Revocation = pki.RevocationURLs{CRL: s.url(pkihttp.CRLPath), OCSP: s.url(pkihttp.OCSPPath)}
	s.Enroll = &enroll.Service{
		Store: s.Store, Issuer: s.Issuer, Now: clock, Renewed: s.identityRenewed,
		URLs:          enroll.URLs{ServerURL: s.url(ServerPath), CheckInURL: s.url(CheckInPath), SCEPURL: s.url(SCEPPath)},
		TrustCA:       s.notes.devTLS,
		ProfilePrefix: enroll.ProfilePrefix(s.PublicURL.Hostname()),
	}
	s.ABM = s.newABM()
	s.MDM = s.newMDMChannel(log, clock)
	s.Admins = adminaccount.New(s.Store, s.sealer, cfg.Password)
	if cfg.ConsoleClock != nil {
		s.Admins.Now = cfg.ConsoleClock
	}
	if cfg.ConsoleIdleTimeout > 0 {
		s.Admins.IdleTimeout = cfg.ConsoleIdleTimeout
	}
	s.App = app.New(s.Store, app.Config{Directory: s.Directory, Catalog: catalog.Default(), Pusher: s.pusher, PushCerts: s.PushCerts,
		Sealer: s.sealer, Lifecycle: clock, Now: time.Now, Accounts: s.Admins, Log: log})
	s.Commands = s.App.Commands
	s.App.Revocation = &app.Revocation{Store: s.Store, CA: s.CA, Now: time.Now}
	s.connectABM()
	s.Renewal = &renewal.Job{Store: s.Store, Enroll: s.Enroll, Commands: s.Commands, Topic: s.PushCerts.Topic, Window: cfg.RenewalWindow,
		Timeout: cfg.RenewalTimeout, Now: clock, Log: log, Metrics: s.Metrics, Notify: s.events.RenewalChanged}
	s.Tombstones = &endings.Tombstones{Store: s.Store, Retention: cfg.TombstoneRetention, Now: clock, Log: log}
	s.setupProfiles(cfg, log, clock)
	if cfg.UnenrollOnDisable {
		s.Directory.Disabled = (&endings.UnenrollOnDisable{Endings: s.App.Endings, Log: log}).Disabled
	}
	if err := s.setupLifecycle(clock); err != nil {
		return nil, err
	}

	// First start (an admin API key, the first owner's setup link), the
	// demo's data, and what the start-up summary shows.
	if err := s.firstStart(ctx); err != nil {
		return nil, err
	}
	if cfg.Demo {
		var created *pushcert.Cert
		if s.demoAPNs, created, err = demo.Setup(ctx, s.Store, s.Directory, s.PushCerts, s.pusher); err != nil {
			return nil, err
		}
		if created != nil {
			s.notes.push = created
		}
		s.notes.demo, s.notes.demoDir = true, cfg.DataDir
		if err := s.setupDemoABM(ctx); err != nil {
			return nil, err
		}
	}
	s.notes.abm, s.notes.abmProblems = s.abmNotes(ctx)
	s.notes.tenants, _ = s.Store.CountTenants(ctx)
	s.notes.users, _ = s.Store.CountUsers(ctx)

	s.handler = s.routes()
	ok = true
	return s, nil
}

// deviceEvent hands the MDM channel's events to metrics, the renewal job
// and webhooks.
func (s *Server) deviceEvent(ctx context.Context, e mdmservice.Event) {
	s.Metrics.DeviceEvent(e.Kind, e.Status)
	s.Renewal.DeviceEvent(ctx, e)
	s.profileDeviceEvent(ctx, e)
	s.Reenroll.DeviceEvent(ctx, e)
	s.events.DeviceEvent(ctx, e.Kind, e.Enrollment, e.ChannelID, e.CommandUUID, e.RequestType, e.Status)
}

// identityRenewed hands an identity SCEP issued for a renewal to the
// renewal job (metrics, log) and webhooks.
func (s *Server) identityRenewed(ctx context.Context, e *store.Enrollment, cert *x509.Certificate, renews string) {
	s.Renewal.Issued(ctx, e, cert, renews)
	s.events.IdentityRenewed(ctx, e, cert, renews)
}

// checkConfig refuses contradictory or malformed settings before anything
// is opened.
func (s *Server) checkConfig() (pki.KeyType, error) {
	cfg := s.cfg
	pub, err := parsePublicURL(cfg.PublicURL)
	if err != nil {
		return "", err
	}
	s.PublicURL = pub
	s.notes.publicHTTP = pub.Scheme != "https"
	if cfg.TLS != TLSAuto && cfg.TLS != TLSACME && cfg.TLS != TLSOff {
		return "", fmt.Errorf("--tls must be %q, %q or %q, not %q", TLSAuto, TLSACME, TLSOff, cfg.TLS)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return "", errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	if s.proxies, err = httpx.ParsePrefixes(cfg.TrustedProxies); err != nil {
		return "", fmt.Errorf("--trusted-proxies: %w", err)
	}
	if cfg.ClientCertHeader != "" && len(s.proxies) == 0 {
		return "", fmt.Errorf("--client-cert-header %s needs --trusted-proxies: name the TLS-terminating proxy that sets it (e.g. --trusted-proxies 10.0.0.5), or the header would be taken from anyone", cfg.ClientCertHeader)
	}
	kt, err := pki.ParseKeyType(cfg.CAKeyType)
	if err != nil {
		return "", fmt.Errorf("--ca-key-type: %w", err)
	}
	return kt, nil
}

// openStore creates the data directory, keeps demo and real data apart
// and opens (and, for SQLite, locks) the store.
func (s *Server) openStore(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("cannot create the data directory %s: %w (choose another with --data)", s.cfg.DataDir, err)
	}
	if err := demo.CheckDataDir(s.cfg.DataDir, s.cfg.Demo); err != nil {
		return err
	}
	st, desc, unlock, err := open.Serving(ctx, s.cfg.DB, s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.Store, s.notes.storeDesc, s.unlock = st, desc, unlock
	return nil
}

// loadKeys loads (or on the first start creates) the sealing key, the CA
// (also written to ca.pem in the data directory) and the SCEP issuer.
func (s *Server) loadKeys(ctx context.Context, kt pki.KeyType) error {
	var err error
	s.sealer, s.notes.sealKeyDesc, s.notes.keyCreated, err = loadSealer(s.cfg)
	if err != nil {
		return err
	}
	s.CA, s.notes.caCreated, err = pki.LoadOrCreateCA(ctx, s.Store, s.sealer, kt, time.Now())
	if err != nil {
		if errors.Is(err, seal.ErrWrongKey) {
			return fmt.Errorf("the CA in the database was sealed with another key: start with the original POMONA_SECRET_KEY or %s", filepath.Join(s.cfg.DataDir, "secret.key"))
		}
		return err
	}
	s.notes.caFile = filepath.Join(s.cfg.DataDir, "ca.pem")
	if err := os.WriteFile(s.notes.caFile, pki.CertPEM(s.CA.Cert), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", s.notes.caFile, err)
	}
	s.Issuer, err = pki.LoadIssuer(ctx, s.Store, s.sealer, s.CA, time.Now())
	return err
}

// firstStart makes the first admin API key (unless --admin-api-key
// bootstraps one) and the first console owner's setup link, each shown
// once, and notes the push certificate for the start-up summary.
func (s *Server) firstStart(ctx context.Context) error {
	var err error
	if s.cfg.AdminAPIKey != "" {
		s.notes.bootstrapKey = true
	} else if s.notes.firstAPIKey, err = apikey.FirstStart(ctx, s.Store, time.Now()); err != nil {
		return err
	}
	s.notes.push, s.notes.pushErr = s.PushCerts.Load(ctx)
	s.PushCerts.Changed(s.notes.push)
	tok, err := s.Admins.InviteFirstOwner(ctx)
	if err != nil {
		return err
	}
	if tok != "" {
		s.notes.ownerSetup = s.SetupURL(tok)
	} else {
		s.notes.pendingOwner, _ = s.Admins.PendingOwner(ctx)
	}
	return nil
}

func orNow(clock func() time.Time) func() time.Time {
	if clock == nil {
		return time.Now
	}
	return clock
}

// Close releases the store (and its lock) and the demo's APNs stand-in.
func (s *Server) Close() error {
	if s.demoAPNs != nil {
		s.demoAPNs.Close()
	}
	if s.demoABM != nil {
		s.demoABM.Close()
	}
	if s.Store == nil {
		return nil
	}
	err := s.Store.Close()
	s.unlock()
	return err
}
