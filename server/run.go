package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pomona-mdm/pomona/credential"
	"github.com/pomona-mdm/pomona/demo"
	"github.com/pomona-mdm/pomona/discovery"
	"github.com/pomona-mdm/pomona/http/connlimit"
	"github.com/pomona-mdm/pomona/push"
	"github.com/pomona-mdm/pomona/tlscert"
	"github.com/pomona-mdm/pomona/version"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

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
	// Bound each client address's open connections before any TLS work
	// (package connlimit). Not limited: the trusted proxies (they carry
	// every client's connections) and loopback (a proxy on the same host;
	// the load benchmark's simulated devices, each keeping its own
	// connections; nobody outside the host).
	exempt := append(loopback[:len(loopback):len(loopback)], s.proxies...)
	ln = connlimit.New(ln, s.cfg.MaxConnsPerAddress, exempt, s.Metrics.ConnsRefused.Inc, s.log)
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
		// Unauthenticated plain HTTP from anyone: every request is bounded
		// in size and time (a validation request is a small GET, answered
		// from memory or one cache read), so a slow client holds a
		// connection for seconds, never for good.
		acmeHTTP = &http.Server{Handler: s.acme.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: tlscert.MaxHTTPHeader,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
		// The same bound per client address as the main listener's.
		go acmeHTTP.Serve(connlimit.New(hl, s.cfg.MaxConnsPerAddress, exempt, s.Metrics.ConnsRefused.Inc, s.log))
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
	prefetched := make(chan struct{})
	if s.acme == nil {
		close(prefetched)
	} else {
		// Obtain the certificate now rather than during a device's first
		// handshake (the listener below answers the TLS-ALPN-01 challenge).
		go func() {
			defer close(prefetched)
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
	// Background jobs (package jobs: one instance of a cluster per pass).
	go s.jobs.Run(ctx, (&push.CertWatch{Certs: s.PushCerts, Jobs: s.jobs, Log: s.log}).Job())
	go s.jobs.Run(ctx, (&push.Repush{Channels: s.Store, Pusher: s.pusher, Log: s.log}).Job())
	go s.jobs.Run(ctx, s.Renewal.Periodic())
	go s.jobs.Run(ctx, s.Tombstones.Periodic())
	go s.jobs.Run(ctx, (&credential.Pruner{Store: s.Store, Limits: []*credential.Limits{&s.Auth.Limits, &s.Admins.Limits}, Now: time.Now, Log: s.log}).Periodic())
	for _, j := range s.abmJobs() {
		go s.jobs.Run(ctx, j)
	}
	go s.ProfileJob.Loop(ctx, profileTick)
	if s.cfg.RetireSilentAfter > 0 {
		go s.jobs.Run(ctx, s.Silence.Periodic())
	}
	go s.webhooks.Run(ctx)
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
	if s.acme != nil {
		// A certificate just obtained is served before it is cached: let
		// its order finish writing it while the store is still open.
		var err error
		select {
		case <-prefetched:
			err = s.acme.Wait(sctx)
		case <-sctx.Done():
			err = sctx.Err()
		}
		if err != nil {
			s.log.Warn("ACME: stopped before a certificate order ended (the next start orders again)", "err", err)
		}
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
		p("  DEMO MODE (never use it for real devices): tenant %s, user %s, password %s,", demo.Domain, demo.User, demo.Password)
		p("  a push certificate that is not Apple's, and pushes go to a local APNs stand-in.")
		p("  The demo's data is in %s, apart from a deployment's (delete it when done).", n.demoDir)
		p("  Try it:  export POMONA_DATA=%s", n.demoDir)
		p("           pomona sim enroll --user %s --password %s --server %s --poll 30s", demo.User, demo.Password, s.PublicURL)
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
	// The demo's directory is throwaway (delete it when done) and its
	// domain is not a company's: backing up its key or redirecting its
	// domain would be wrong steps; the demo's own lines say what to try.
	if n.keyCreated && !n.demo {
		next = append(next, "back up "+strings.TrimPrefix(n.sealKeyDesc, "from ")+": without it the CA and other sealed secrets cannot be read")
	}
	if n.devTLS {
		next = append(next, fmt.Sprintf("trust the development CA for local tools: curl --cacert %s %s/healthz (the CLI finds it in --data by itself); real devices need a publicly trusted certificate: --tls=acme, --tls-cert/--tls-key, or --tls=off behind a TLS proxy (docs/deployment.md)", n.caFile, s.PublicURL))
	}
	if n.push == nil {
		next = append(next, "no APNs push certificate yet: enrollment answers 503 until one is imported. pomona push-cert csr, have it signed with an MDM vendor certificate, upload it at Apple's Push Certificates Portal, then pomona push-cert import (docs/push-certificate.md)")
		// A newcomer's first start has no Apple account behind it either:
		// say where a device can be seen enrolling meanwhile.
		next = append(next, "to see a simulated iPhone enroll without an Apple account meanwhile: pomona serve --demo (keeps its own data directory, <--data>-demo; README, docs/simulator.md)")
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
	if n.tenants > 0 && !n.demo {
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
