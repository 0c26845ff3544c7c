package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/adminaccount"
	"github.com/pomona-mdm/pomona/demo"
	"github.com/pomona-mdm/pomona/endings"
	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/profiles"
	"github.com/pomona-mdm/pomona/renewal"
	"github.com/pomona-mdm/pomona/server"
)

// localPublicURL is the public URL of a development server listening on
// listen when --public-url was not given: https://localhost with listen's
// port, so that the printed links (console set-up, discovery, enrollment
// URLs) reach it. def is kept for port 0 (chosen by the system) and for an
// address without a port.
func localPublicURL(listen, def string) string {
	_, port, err := net.SplitHostPort(listen)
	n, perr := strconv.Atoi(port)
	switch {
	case err != nil || perr != nil || n <= 0:
		return def
	case n == 443:
		return "https://localhost"
	}
	return "https://localhost:" + port
}

// runServe is `pomona serve`: it runs the server until SIGINT or SIGTERM.
func runServe(fs *flag.FlagSet) func(*call) error {
	cfg := server.DefaultConfig()
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to listen on")
	fs.StringVar(&cfg.PublicURL, "public-url", cfg.PublicURL, "externally visible https base URL of this server (with --tls=auto and without this flag, --listen's port: --listen :9443 means https://localhost:9443)")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "directory for the embedded database, keys and ca.pem")
	fs.StringVar(&cfg.DB, "db", "", "database URL (default: the SQLite file in --data)")
	fs.StringVar(&cfg.TLS, "tls", cfg.TLS, "auto (--tls-cert/--tls-key, else a certificate from Pomona's CA), acme (a public certificate for --public-url's host by ACME) or off (plain HTTP behind a TLS proxy)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate chain to serve (reloaded when the file changes and on SIGHUP)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&cfg.ACMEDirectory, "acme-directory", "https://acme-v02.api.letsencrypt.org/directory", "--tls=acme: the ACME directory URL (Let's Encrypt's staging: https://acme-staging-v02.api.letsencrypt.org/directory)")
	fs.StringVar(&cfg.ACMEEmail, "acme-email", "", "--tls=acme: contact e-mail for the ACME account (expiry and policy notices)")
	fs.StringVar(&cfg.ACMEHTTPListen, "acme-http-listen", "", "--tls=acme: also answer HTTP-01 challenges (and redirect to https) on this plain-HTTP address, e.g. :80; TLS-ALPN-01 is always answered on --listen")
	fs.StringVar(&cfg.ACMECAFile, "acme-ca-file", "", "--tls=acme: PEM CA to trust for the ACME directory (a private ACME CA)")
	fs.StringVar(&cfg.AdminAPIKey, "admin-api-key", "", "bootstrap admin API key for automation (without it the first start creates one and prints it once)")
	fs.StringVar(&cfg.SecretKey, "secret-key", "", "key sealing secrets at rest, base64 of 32 bytes (default: <data>/secret.key, created on first start)")
	keyTypes := make([]string, len(pki.KeyTypes))
	for i, k := range pki.KeyTypes {
		keyTypes[i] = string(k)
	}
	fs.StringVar(&cfg.CAKeyType, "ca-key-type", cfg.CAKeyType, "key type of a new CA: "+strings.Join(keyTypes, ", "))
	fs.DurationVar(&cfg.AccessTokenTTL, "access-token-ttl", cfg.AccessTokenTTL, "how long a device's sign-in lasts before the person must sign in again (e.g. 720h)")
	fs.DurationVar(&cfg.RenewalWindow, "renewal-window", renewal.DefaultWindow, "renew device identity certificates within this long before they expire (spread over its first half per device)")
	fs.DurationVar(&cfg.RenewalTimeout, "renewal-timeout", renewal.DefaultTimeout, "a renewal whose device has not fetched its new identity after this long counts as failed and is tried again")
	fs.BoolVar(&cfg.UnenrollOnDisable, "unenroll-on-disable", false, "disabling a user also unenrolls their devices (RemoveProfile; the device is forgotten at once)")
	fs.DurationVar(&cfg.ProfileVerifyInterval, "profile-verify-interval", profiles.DefaultVerifyEvery, "how often each device with configuration profiles from Pomona is asked for its ProfileList to find drift")
	fs.DurationVar(&cfg.ReenrollWindow, "reenroll-window", lifecycle.DefaultReenrollWindow, "link a new enrollment to the same user's earlier one of the same model last heard of at most this long before (its likely predecessor)")
	fs.DurationVar(&cfg.SilentAfter, "silent-after", lifecycle.DefaultSilentAfter, "flag enrolled devices not seen for this long as silent (API, console, CLI filters; dashboard count)")
	fs.DurationVar(&cfg.RetireSilentAfter, "retire-silent-after", 0, "retire devices not seen for this long: RemoveProfile, enrollment ended, enrollment.ended event (0: never; at least --silent-after)")
	fs.DurationVar(&cfg.TombstoneRetention, "tombstone-retention", endings.DefaultTombstoneRetention, "how long the devices of a deleted user or tenant are still told to remove their profile (com.apple.unrecognized.device) before they are forgotten")
	fs.DurationVar(&cfg.ConsoleIdleTimeout, "console-idle-timeout", adminaccount.DefaultIdleTimeout, "sign web-console administrators out after this long without activity")
	fs.StringVar(&cfg.TrustedProxies, "trusted-proxies", "", "proxies (IPs or CIDR prefixes, comma-separated) whose X-Forwarded-For names the client (for logs, audit and per-address sign-in limits) and whose --client-cert-header is believed")
	fs.IntVar(&cfg.MaxConnsPerAddress, "max-conns-per-address", cfg.MaxConnsPerAddress, "most connections one client address (IPv6: its /64) may hold open at once; more are closed at once, counted in pomona_connections_refused_total and logged (0: no limit; --trusted-proxies are not limited)")
	fs.StringVar(&cfg.ClientCertHeader, "client-cert-header", "", "header in which a TLS-terminating proxy forwards the device's client certificate (URL-escaped PEM); honoured only from --trusted-proxies, which it requires")
	fs.StringVar(&cfg.APNsURL, "apns-url", "https://api.push.apple.com", "APNs endpoint (another HTTP/2 endpoint for tests or an air-gapped relay)")
	fs.StringVar(&cfg.APNsCAFile, "apns-ca-file", "", "PEM CA to trust for --apns-url (a local stand-in)")
	fs.StringVar(&cfg.ABMURL, "abm-url", "", "Apple Business Manager's device-assignment service for server tokens and fallback discovery (default Apple's, "+abm.DefaultURL+"; a local stand-in for tests)")
	fs.BoolVar(&cfg.Demo, "demo", false, "demo mode: a throwaway tenant, user, push certificate and local APNs stand-in, so pomona sim enroll works without an Apple account (never for real devices); its data goes to <data>-demo, never into --data itself")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long SIGTERM waits for requests in flight")
	return func(c *call) error {
		publicURLSet := false
		fs.Visit(func(f *flag.Flag) { publicURLSet = publicURLSet || f.Name == "public-url" })
		if !publicURLSet && cfg.TLS == "auto" {
			cfg.PublicURL = localPublicURL(cfg.Listen, cfg.PublicURL)
		}
		if cfg.Demo {
			// The demo never writes into a deployment's data: it keeps its own
			// directory (./pomona-data-demo), and a SQLite database there.
			if cfg.DB != "" {
				return usagef("--demo keeps its data apart in its own directory: it cannot be combined with --db")
			}
			cfg.DataDir = demo.DataDir(cfg.DataDir)
		}
		var level slog.Level
		if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
			return usagef("--log-level %q: use debug, info, warn or error", *logLevel)
		}
		opts := &slog.HandlerOptions{Level: level}
		var log *slog.Logger
		switch *logFormat {
		case "text":
			log = slog.New(slog.NewTextHandler(c.Stderr, opts))
		case "json":
			log = slog.New(slog.NewJSONHandler(c.Stderr, opts))
		default:
			return usagef("--log-format %q: use text or json", *logFormat)
		}
		// Listen before server.New: a first start creates the admin API key
		// and the owner's setup link and prints them once, after New; a port
		// already taken must fail before then, not after the key is stored
		// and never shown (the next start would only say "the link the
		// first start printed").
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("cannot listen on %s: %w (is another server running? choose another address with --listen)", cfg.Listen, err)
		}
		srv, err := server.New(c.Ctx, cfg, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer srv.Close()
		return srv.Run(c.Ctx, ln, c.Stdout)
	}
}
