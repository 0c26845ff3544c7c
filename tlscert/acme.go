package tlscert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// LetsEncrypt is the default ACME directory (production).
const LetsEncrypt = acme.LetsEncryptURL

// ACMEConfig says where and for what to obtain a certificate.
type ACMEConfig struct {
	Host      string // the one DNS name to obtain a certificate for (--public-url's host)
	Directory string // ACME directory URL (RFC 8555 §7.1.1); empty: Let's Encrypt
	Email     string // account contact (expiry notices); may be empty
	// RootCAs to trust for the directory's HTTPS; nil: the system roots.
	// Set for a private ACME CA or a test server.
	RootCAs *x509.CertPool
	Cache   autocert.Cache
	// HTTPSOrigin is where HTTPHandler sends everything but a challenge:
	// "https://host[:port]", --public-url's origin (its port kept). Empty:
	// "https://" + Host.
	HTTPSOrigin string
}

// ACME obtains and renews a certificate for one host. TLSConfig answers
// TLS-ALPN-01 challenges (RFC 8737) on the HTTPS listener; HTTPHandler
// answers HTTP-01 (RFC 8555 §8.3) on a port-80 listener. Renewal starts
// 30 days before expiry (autocert's default) while the process runs.
type ACME struct {
	m      *autocert.Manager
	host   string
	origin string // HTTPSOrigin, without a trailing slash
	busy   inflight
}

// NewACME checks cfg and builds the manager. It contacts nothing yet: the
// certificate is requested at the first handshake or by Prefetch.
func NewACME(cfg ACMEConfig) (*ACME, error) {
	host := strings.ToLower(cfg.Host)
	if host == "" || net.ParseIP(host) != nil {
		return nil, fmt.Errorf("ACME needs --public-url with a DNS name, not %q", cfg.Host)
	}
	if cfg.Cache == nil {
		return nil, errors.New("ACME needs a cache for its account key and certificates")
	}
	dir := cfg.Directory
	if dir == "" {
		dir = LetsEncrypt
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.RootCAs != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		HostPolicy: autocert.HostWhitelist(host),
		Cache:      cfg.Cache,
		Email:      cfg.Email,
		Client:     &acme.Client{DirectoryURL: dir, HTTPClient: &http.Client{Transport: tr, Timeout: time.Minute}},
	}
	origin := strings.TrimSuffix(cfg.HTTPSOrigin, "/")
	if origin == "" {
		origin = "https://" + host
	}
	if u, err := url.Parse(origin); err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("ACME: the https origin to redirect to must be https://host[:port], not %q", cfg.HTTPSOrigin)
	}
	return &ACME{m: m, host: host, origin: origin}, nil
}

// TLSConfig serves the certificate (and TLS-ALPN-01 challenges) and
// offers h2, http/1.1 and acme-tls/1. A ClientHello without a server name
// (a client dialling an IP address, such as `pomona healthcheck`) gets the
// host's certificate instead of autocert's "missing server name" error.
func (a *ACME) TLSConfig() *tls.Config {
	c := a.m.TLSConfig()
	c.MinVersion = tls.VersionTLS12
	c.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if h.ServerName == "" {
			hh := *h
			hh.ServerName = a.host
			h = &hh
		}
		a.busy.begin()
		defer a.busy.end()
		return a.m.GetCertificate(h)
	}
	return c
}

// MaxHTTPHeader bounds the header of a request to HTTPHandler's listener
// (http.Server.MaxHeaderBytes; net/http allows 4 KiB more): an ACME
// validation request is a GET with a few short headers.
const MaxHTTPHeader = 8 << 10

// HTTPHandler answers HTTP-01 challenges (RFC 8555 §8.3) and redirects
// every other GET or HEAD to the same path and query on HTTPSOrigin (for
// --acme-http-listen, normally port 80). This listener is unauthenticated
// plain HTTP, so nothing a request says chooses where it is sent:
//   - the redirect's host is never the request's (autocert's own redirect
//     used the Host header, or the host of an absolute-form request-target
//     such as "GET http://evil.example/ HTTP/1.1", and appended an opaque
//     target as it came: "GET http:.evil.example/" went to
//     https://<host>.evil.example/; it also dropped --public-url's port);
//   - a request with a body (Content-Length other than 0, or chunked) is
//     refused with 400 and the connection closed: a validation request
//     has none, and net/http reads up to 256 KiB of an unread body before
//     it answers, which a client sending one byte at a time held open
//     forever on a listener without a read timeout;
//   - other methods get 405 (autocert: 400).
//
// The Host header may carry a port ("mdm.example.com:80" is valid,
// RFC 9110 §7.2), which autocert's host check for challenges would refuse:
// it is removed. The server serving this handler must set ReadTimeout,
// WriteTimeout and MaxHeaderBytes (MaxHTTPHeader): see server.Run.
func (a *ACME) HTTPHandler() http.Handler {
	h := a.m.HTTPHandler(http.HandlerFunc(a.redirect))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
			http.Error(w, "this listener takes no request body", http.StatusBadRequest)
			return
		}
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r.Host = host
		}
		h.ServeHTTP(w, r)
	})
}

// redirect sends a request that is not a challenge to the same path and
// query on a.origin. Only the path and query are taken from the request,
// and the path always starts with "/" (an opaque or empty target becomes
// "/"), so the target's host is a.origin's whatever the request-target.
func (a *ACME) redirect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use https: "+a.origin, http.StatusMethodNotAllowed)
		return
	}
	p := "/"
	if r.URL.Opaque == "" {
		p = r.URL.EscapedPath()
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
	}
	if r.URL.RawQuery != "" {
		p += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, a.origin+p, http.StatusFound)
}

// Prefetch obtains (or loads from the cache) the certificate now, so the
// first device does not wait for issuance. The HTTPS listener (TLS-ALPN-01)
// or the HTTP-01 listener must already be serving.
func (a *ACME) Prefetch() (*x509.Certificate, error) {
	a.busy.begin()
	defer a.busy.end()
	// Look like a modern client (ECDSA): autocert keeps an ECDSA and an RSA
	// certificate apart, and a bare hello would order an RSA one while the
	// first real handshake orders the ECDSA one at the same time; the two
	// TLS-ALPN-01 challenges for one name would then overwrite each other.
	c, err := a.m.GetCertificate(&tls.ClientHelloInfo{
		ServerName:       a.host,
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:  []tls.CurveID{tls.CurveP256},
	})
	if err != nil {
		return nil, err
	}
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	return x509.ParseCertificate(c.Certificate[0])
}

// Wait returns when no certificate lookup or order is in flight, or with
// ctx's error. A server calls it after its listeners stop and before its
// store closes: autocert hands a new certificate to every handshake
// waiting for it before the handshake (or Prefetch) that ordered it writes
// it to the cache, so a server stopped in between would lose a
// certificate it already served and order another at the next start
// (against the CA's rate limits).
func (a *ACME) Wait(ctx context.Context) error { return a.busy.wait(ctx) }

// inflight counts calls in progress; wait blocks until there are none.
// (sync.WaitGroup forbids an Add from zero concurrent with Wait, and
// handshakes may still arrive while a server stops.)
type inflight struct {
	mu   sync.Mutex
	n    int
	none chan struct{} // closed when n drops to 0; nil while n is 0
}

func (f *inflight) begin() {
	f.mu.Lock()
	if f.n == 0 {
		f.none = make(chan struct{})
	}
	f.n++
	f.mu.Unlock()
}

func (f *inflight) end() {
	f.mu.Lock()
	f.n--
	if f.n == 0 {
		close(f.none)
		f.none = nil
	}
	f.mu.Unlock()
}

func (f *inflight) wait(ctx context.Context) error {
	f.mu.Lock()
	none := f.none
	f.mu.Unlock()
	if none == nil {
		return nil
	}
	select {
	case <-none:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sealer seals and opens blobs (package seal), bound to a context string.
type Sealer interface {
	Seal(plaintext []byte, context string) []byte
	Open(sealed []byte, context string) ([]byte, error)
}

// Secrets is the store's named-blob table (store.SecretStore).
type Secrets interface {
	PutSecret(ctx context.Context, name string, value []byte) error
	Secret(ctx context.Context, name string) ([]byte, error)
}

// SealedCache is an autocert.Cache in the store's secrets table, sealed
// with the server's key like the CA and TLS keys: every instance of a
// cluster shares the ACME account and certificate, and a database dump
// holds no usable private key. Names are stored as "acme/<name>"; a
// deleted entry is an empty value.
type SealedCache struct {
	Secrets Secrets
	Sealer  Sealer
	// IsNotFound reports the store's not-found error (store.ErrNotFound).
	IsNotFound func(error) bool
}

func (c *SealedCache) Get(ctx context.Context, name string) ([]byte, error) {
	v, err := c.Secrets.Secret(ctx, "acme/"+name)
	if err != nil {
		if c.IsNotFound(err) {
			return nil, autocert.ErrCacheMiss
		}
		return nil, err
	}
	if len(v) == 0 {
		return nil, autocert.ErrCacheMiss
	}
	return c.Sealer.Open(v, "acme/"+name)
}

func (c *SealedCache) Put(ctx context.Context, name string, data []byte) error {
	return c.Secrets.PutSecret(ctx, "acme/"+name, c.Sealer.Seal(data, "acme/"+name))
}

func (c *SealedCache) Delete(ctx context.Context, name string) error {
	return c.Secrets.PutSecret(ctx, "acme/"+name, []byte{}) // the column is NOT NULL
}

var _ autocert.Cache = (*SealedCache)(nil)

// ReadCAFile reads a PEM bundle of CA certificates (--acme-ca-file).
func ReadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return p, nil
}
