package abm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Client calls Apple's device-assignment service for one server token: one
// method per endpoint; the session and retries are its Transport's.
type Client struct {
	BaseURL   string // e.g. DefaultURL
	HTTP      *http.Client
	UserAgent string
}

// NewClient returns a client of the service at baseURL ("" DefaultURL)
// authenticated with tokens, sending through base (nil:
// http.DefaultTransport), each call bounded by timeout (0: 30 s).
func NewClient(baseURL string, tokens OAuthTokens, base http.RoundTripper, timeout time.Duration) *Client {
	if baseURL == "" {
		baseURL = DefaultURL
	}
	baseURL = strings.TrimRight(baseURL, "/")
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tr := &Transport{Base: base, SessionURL: baseURL + PathSession, Tokens: tokens}
	return &Client{BaseURL: baseURL, HTTP: &http.Client{Transport: tr, Timeout: timeout}, UserAgent: "pomona-abm/1"}
}

// Account is Apple's account detail (GET /account, Apple: "Get Account
// Detail"): the organisation and the MDM server the token belongs to.
type Account struct {
	ServerName    string `json:"server_name"`
	ServerUUID    string `json:"server_uuid"`
	AdminID       string `json:"admin_id"`
	FacilitatorID string `json:"facilitator_id"`
	OrgName       string `json:"org_name"`
	OrgEmail      string `json:"org_email"`
	OrgPhone      string `json:"org_phone"`
	OrgAddress    string `json:"org_address"`
	OrgID         string `json:"org_id"`
	OrgIDHash     string `json:"org_id_hash"`
	OrgType       string `json:"org_type"`    // edu or org
	OrgVersion    string `json:"org_version"` // v1 (ABM) or v2 (ASM)
	URLs          []struct {
		URI        string   `json:"uri"`
		HTTPMethod []string `json:"http_method"`
	} `json:"urls"`
}

// DiscoveryProfile is the registered fallback discovery URL (GET
// /account-driven-enrollment/profile).
type DiscoveryProfile struct {
	URL         string `json:"mdm_service_discovery_url"`
	LastUpdated string `json:"last_updated_timestamp,omitempty"`
}

// Account reads the account detail.
func (c *Client) Account(ctx context.Context) (*Account, error) {
	var a Account
	if err := c.do(ctx, http.MethodGet, PathAccount, nil, &a); err != nil {
		return nil, err
	}
	if a.ServerUUID == "" {
		return nil, errors.New("Apple's account detail has no server_uuid")
	}
	return &a, nil
}

// DiscoveryURL reads the registered fallback discovery URL; none
// registered is an *APIError with Code NOT_FOUND (NotRegistered reports it).
func (c *Client) DiscoveryURL(ctx context.Context) (*DiscoveryProfile, error) {
	var p DiscoveryProfile
	if err := c.do(ctx, http.MethodGet, PathDiscoveryProfile, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// SetDiscoveryURL registers u (Apple: "Assign Account-Driven Enrollment
// Profile"): POST {"mdm_service_discovery_url": u}. Setting the same URL
// again changes nothing.
func (c *Client) SetDiscoveryURL(ctx context.Context, u string) error {
	return c.do(ctx, http.MethodPost, PathDiscoveryProfile, DiscoveryProfile{URL: u}, nil)
}

// RemoveDiscoveryURL removes the registration (DELETE).
func (c *Client) RemoveDiscoveryURL(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, PathDiscoveryProfile, nil, nil)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in == nil {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	} else {
		req.Header.Set("Content-Type", ContentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.UserAgent)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &APIError{Status: resp.StatusCode, Code: errorCode(b), Endpoint: method + " " + path}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("Apple's answer to %s %s is not the expected JSON: %v", method, path, err)
		}
	}
	return nil
}

// APIError is a refusal by Apple's service. Code is Apple's error code
// (ORG_NOT_SUPPORTED, …) when the body carried one.
type APIError struct {
	Status   int
	Code     string
	Endpoint string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("Apple answered %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	s += " to " + e.Endpoint
	if w := Explain(e.Code, e.Status); w != "" {
		s += ": " + w
	}
	return s
}

// NotRegistered reports whether err is Apple's "no discovery URL
// registered" (404 NOT_FOUND).
func NotRegistered(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

var codeRE = regexp.MustCompile(`\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|\b(?:FORBIDDEN|UNAUTHORIZED)\b`)

// errorCode finds Apple's code in an error body: a bare or quoted word
// like ORG_NOT_SUPPORTED, or inside a JSON object.
func errorCode(b []byte) string {
	if len(b) > 4<<10 {
		b = b[:4<<10]
	}
	return codeRE.FindString(string(b))
}

// Explain says in plain words what an error code of Apple's
// device-assignment service means and what to do ("" when unknown).
func Explain(code string, status int) string {
	switch code {
	case "ORG_NOT_SUPPORTED":
		return "Apple does not offer account-driven enrollment fallback discovery to this organisation (only Apple Business Manager and Apple School Manager organisations with Managed Apple Accounts have it). Devices still find Pomona through the company domain's /.well-known/com.apple.remotemanagement answer"
	case "MDM_SERVICE_DISCOVERY_URL_NOT_VALID":
		return "Apple refused the discovery URL: it must be an absolute https URL on a public host name. Check serve --public-url (a localhost or http URL cannot be registered)"
	case "MDM_SERVICE_DISCOVERY_URL_REQUIRED":
		return "the request carried no discovery URL"
	case "NOT_FOUND":
		return "no fallback discovery URL is registered for this MDM server"
	case "T_C_NOT_SIGNED":
		return "an administrator must sign in to ABM and accept the new terms and conditions first"
	case "FORBIDDEN", "UNAUTHORIZED":
		return "Apple refused the server token's session: import a newly downloaded server token"
	}
	switch {
	case status == http.StatusNotFound:
		return "no fallback discovery URL is registered for this MDM server"
	case status == http.StatusTooManyRequests:
		return "Apple asks to slow down; Pomona retries later"
	case status >= 500:
		return "Apple's service is not available right now; Pomona retries later"
	}
	return ""
}
