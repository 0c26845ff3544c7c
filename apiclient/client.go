// Package apiclient is a Go client of Pomona's admin API. The CLI uses it
// for every admin command, so the CLI can do nothing the API cannot.
package apiclient

import (
	"bytes"
	"context"
	"crypto/rand"
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

	"github.com/pomona-mdm/pomona/apitypes"
)

// Client talks to one Pomona server.
type Client struct {
	BaseURL string
	APIKey  string
	HTTP    *http.Client
	// Retries is how often DoOnce repeats a request whose answer was lost
	// (default 3); RetryWait the first pause, doubling (default 1 s).
	Retries   int
	RetryWait time.Duration
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
	return c.do(ctx, method, path, in, out, "")
}

// DoOnce is Do for a request that creates something (a command): it
// carries a fresh Idempotency-Key (draft-ietf-httpapi-idempotency-key-header)
// and, when the answer is lost (no connection, a cut connection, or 502,
// 503 or 504 from a proxy or a restarting instance), repeats the request
// with the same key up to Retries times, so that the server does it once.
// Other answers, errors included, are final.
func (c *Client) DoOnce(ctx context.Context, method, path string, in, out any) error {
	key := newIdempotencyKey()
	retries, wait := c.Retries, c.RetryWait
	if retries == 0 {
		retries = 3
	}
	if wait <= 0 {
		wait = time.Second
	}
	for attempt := 0; ; attempt++ {
		err := c.do(ctx, method, path, in, out, key)
		if err == nil || attempt >= retries || !lost(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait << attempt):
		}
	}
}

// lost reports whether err means the request may or may not have been
// carried out and its answer did not arrive.
func lost(err error) bool {
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Status == http.StatusBadGateway || ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusGatewayTimeout
	}
	var te *transportError
	return errors.As(err, &te)
}

// transportError is a request that got no HTTP answer.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// newIdempotencyKey is a random UUID as a Structured Field string.
func newIdempotencyKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf(`"%x-%x-%x-%x-%x"`, b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (c *Client) do(ctx context.Context, method, path string, in, out any, idempotencyKey string) error {
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
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
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
		return &transportError{fmt.Errorf("cannot reach the Pomona server at %s: %w (is `pomona serve` running? set --server or POMONA_SERVER)", c.BaseURL, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &transportError{err}
	}
	if resp.StatusCode >= 400 {
		var e apitypes.Error
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

// The wire types, declared once in package apitypes (shared with the
// server), under the names the CLI knows.
type (
	Tenant     = apitypes.Tenant
	User       = apitypes.User
	APIKey     = apitypes.APIKey
	UserInput  = apitypes.UserInput
	ServerInfo = apitypes.ServerInfo
)

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

func (c *Client) ServerInfo(ctx context.Context) (*ServerInfo, error) {
	var s ServerInfo
	return &s, c.Do(ctx, http.MethodGet, "/api/v1/server", nil, &s)
}
