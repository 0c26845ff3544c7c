package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/pomona-mdm/pomona/discovery/check"
	"github.com/pomona-mdm/pomona/http/console"
)

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

// EnrollURL is the absolute enrollment URL of a tenant.
func (s *Server) EnrollURL(tenantID string) string { return s.url(EnrollPath(tenantID)) }

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
