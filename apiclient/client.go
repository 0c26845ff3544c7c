// Package apiclient is a Go client of Pomona's admin API. The CLI uses it
// for every admin command, so the CLI can do nothing the API cannot.
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/http/api"
)

// Client talks to one Pomona server.
type Client struct {
	BaseURL string
	APIKey  string
	HTTP    *http.Client
}

// New returns a client. caFile, when set, is a PEM file of extra trusted
// CAs (Pomona's own development CA, for instance).
func New(baseURL, apiKey, caFile string) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--server %q must be a URL such as https://localhost:8443", baseURL)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), APIKey: apiKey, HTTP: &http.Client{Transport: tr, Timeout: 60 * time.Second}}, nil
}

// Error is an error answer of the API.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d, %s)", e.Message, e.Status, e.Code)
}

// Raw is a request body Do sends as it is, with its Content-Type (a logo
// image, for example); any other body is sent as JSON.
type Raw struct {
	ContentType string
	Data        []byte
}

// Do sends a request with an optional body (JSON, or Raw) and decodes a
// JSON answer into out (when non-nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := "application/json"
	if raw, ok := in.(Raw); ok {
		body, ct = bytes.NewReader(raw.Data), raw.ContentType
	} else if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Accept", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return fmt.Errorf("%w\n  the server's certificate is not trusted: pass --ca-file <data dir>/ca.pem (or POMONA_CA_FILE)", err)
		}
		return fmt.Errorf("cannot reach the Pomona server at %s: %w (is `pomona serve` running? set --server or POMONA_SERVER)", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
			Field string `json:"field"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error, e.Code = strings.TrimSpace(string(data)), "http_error"
			if e.Error == "" {
				e.Error = http.StatusText(resp.StatusCode)
			}
		}
		if resp.StatusCode == http.StatusUnauthorized {
			e.Error += " — set --api-key or POMONA_API_KEY (the first `pomona serve` prints one; more with `pomona apikey create`)"
		}
		return &Error{Status: resp.StatusCode, Code: e.Code, Message: e.Error, Field: e.Field}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("unexpected answer from %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Typed helpers for the resources the CLI uses most.

type (
	Tenant = api.Tenant
	User   = api.User
	APIKey = api.APIKey
)

// UserInput is the body of POST /api/v1/users.
type UserInput struct {
	Tenant         string `json:"tenant,omitempty"`
	Email          string `json:"email"`
	ManagedAppleID string `json:"managed_apple_id,omitempty"`
	Name           string `json:"name,omitempty"`
	Password       string `json:"password,omitempty"`
	Enabled        *bool  `json:"enabled,omitempty"`
}

func (c *Client) CreateUser(ctx context.Context, in UserInput) (*User, error) {
	var u User
	return &u, c.Do(ctx, http.MethodPost, "/api/v1/users", in, &u)
}

func (c *Client) User(ctx context.Context, ref string) (*User, error) {
	var u User
	return &u, c.Do(ctx, http.MethodGet, "/api/v1/users/"+url.PathEscape(ref), nil, &u)
}

func (c *Client) Tenant(ctx context.Context, ref string) (*Tenant, error) {
	var t Tenant
	return &t, c.Do(ctx, http.MethodGet, "/api/v1/tenants/"+url.PathEscape(ref), nil, &t)
}

// ServerInfo is GET /api/v1/server.
type ServerInfo struct {
	Version   string `json:"version"`
	PublicURL string `json:"public_url"`
	Store     string `json:"store"`
	Tenants   int    `json:"tenants"`
	Users     int    `json:"users"`
}

func (c *Client) ServerInfo(ctx context.Context) (*ServerInfo, error) {
	var s ServerInfo
	return &s, c.Do(ctx, http.MethodGet, "/api/v1/server", nil, &s)
}
