package server

import (
	"time"

	"github.com/pomona-mdm/pomona/auth"
	"github.com/pomona-mdm/pomona/http/connlimit"
	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/pki"
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
	// ABMURL is Apple's device-assignment service for the Apple Business
	// Manager connection ("" Apple's; a local stand-in in tests).
	ABMURL string
	// Demo sets up a throwaway tenant, user, push certificate and a local
	// APNs stand-in (docs: README quick start). Never in production.
	Demo bool
	// TrustedProxies lists the proxies (addresses, CIDR prefixes, comma
	// separated) whose X-Forwarded-For names the client; empty: the header
	// is ignored and the direct peer is the client.
	TrustedProxies string
	// MaxConnsPerAddress bounds the connections one client address (IPv6:
	// its /64) holds open on the listener at once; more are closed as soon
	// as accepted (package connlimit). TrustedProxies are not limited.
	// 0: no limit. Default connlimit.DefaultMax.
	MaxConnsPerAddress int
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
	// ProfileVerifyInterval: every device with profiles of Pomona's is
	// sent a ProfileList this often to find drift (default 24 h).
	ProfileVerifyInterval time.Duration
	// ReenrollWindow: a new enrollment is linked to the same user's
	// earlier one of the same model last heard of at most this long before
	// (default 30 days; docs/lifecycle.md, "Re-enrollment").
	ReenrollWindow time.Duration
	// SilentAfter: enrolled devices not seen for this long are flagged
	// silent (default 30 days).
	SilentAfter time.Duration
	// RetireSilentAfter: devices not seen for this long are retired
	// (RemoveProfile, enrollment ended); zero, the default, never retires.
	RetireSilentAfter time.Duration
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

		MaxConnsPerAddress: connlimit.DefaultMax,
	}
}
