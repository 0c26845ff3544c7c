package abm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Transport is the http.RoundTripper of one server token: it authenticates
// requests to Apple's device-assignment service and retries transient
// failures, so Client only deals with endpoints.
//
// Authentication (Apple: "Authenticating with a Device Enrollment Program
// (DEP) server"): GET /session signed with OAuth 1.0a (HMAC-SHA1) and the
// token's consumer and access credentials answers an auth_session_token,
// sent as X-ADM-Auth-Session on every request. Apple may hand a new one in
// a response's X-ADM-Auth-Session (kept); a 401 (or the stand-in's 403
// "FORBIDDEN") means the session ended: one new session, one repeat.
//
// Retries: 429 and 5xx answers and connection errors are repeated up to
// MaxAttempts times in all, after Backoff doubling (or the answer's
// Retry-After, at most MaxRetryAfter), only for requests whose body can be
// replayed. Every call Apple offers here is idempotent (GET, DELETE, and a
// POST that sets one value).
type Transport struct {
	// Base sends the requests (nil: http.DefaultTransport).
	Base http.RoundTripper
	// SessionURL is the service's /session endpoint.
	SessionURL string
	// Tokens are the server token's OAuth credentials.
	Tokens OAuthTokens
	// Now is the OAuth timestamp's clock (nil: time.Now).
	Now func() time.Time
	// MaxAttempts (default 3) and Backoff (default 1 s) bound the retries.
	MaxAttempts int
	Backoff     time.Duration

	mu      sync.Mutex
	session string
}

// MaxRetryAfter caps how long a Retry-After makes a call wait.
const MaxRetryAfter = 30 * time.Second

// ErrSessionRefused: Apple refused the server token at /session (revoked,
// expired, or replaced by a newer download in ABM).
var ErrSessionRefused = errors.New("Apple refused the server token")

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *Transport) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// RoundTrip sends req with a session, renewing the session once when it
// ended, and retries transient failures.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	attempts := t.MaxAttempts
	if attempts <= 0 {
		attempts = 3
	}
	backoff := t.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for attempt := 1; ; attempt++ {
		resp, err := t.authenticated(req)
		if attempt >= attempts || !replayable || !transient(resp, err) || errors.Is(err, ErrSessionRefused) {
			return resp, err
		}
		wait := backoff << (attempt - 1)
		if resp != nil {
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra >= 0 {
				wait = min(time.Duration(ra)*time.Second, MaxRetryAfter)
			}
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
		}
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(wait):
		}
	}
}

func transient(resp *http.Response, err error) bool {
	if err != nil {
		return true
	}
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
}

// authenticated sends one copy of req with the current session (a new
// one first when there is none), and once more with a new session when
// Apple says the session ended.
func (t *Transport) authenticated(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	session := t.session
	t.mu.Unlock()
	var err error
	if session == "" {
		if session, err = t.newSession(req); err != nil {
			return nil, err
		}
	}
	resp, err := t.send(req, session)
	if err != nil {
		return nil, err
	}
	if sessionEnded(resp) {
		resp.Body.Close()
		if session, err = t.newSession(req); err != nil {
			return nil, err
		}
		if resp, err = t.send(req, session); err != nil {
			return nil, err
		}
	}
	if s := resp.Header.Get(HeaderSession); s != "" {
		t.mu.Lock()
		t.session = s
		t.mu.Unlock()
	}
	return resp, nil
}

// sessionEnded: 401, or 403 with the body FORBIDDEN (what a restarted
// stand-in answers for a session it does not know; other 403s, such as
// T_C_NOT_SIGNED, are real refusals). The body is put back.
func sessionEnded(resp *http.Response) bool {
	if resp.StatusCode == http.StatusUnauthorized {
		return true
	}
	if resp.StatusCode != http.StatusForbidden {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return strings.Trim(strings.TrimSpace(string(b)), `"`) == "FORBIDDEN"
}

// send clones req (a RoundTripper must not change it) with the session and
// the protocol version, and a fresh copy of its body.
func (t *Transport) send(req *http.Request, session string) (*http.Response, error) {
	r := req.Clone(req.Context())
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		r.Body = body
	}
	r.Header.Set(HeaderSession, session)
	if r.Header.Get(HeaderProtocolVersion) == "" {
		r.Header.Set(HeaderProtocolVersion, ProtocolVersion)
	}
	return t.base().RoundTrip(r)
}

// newSession asks SessionURL for a session token and keeps it.
func (t *Transport) newSession(req *http.Request) (string, error) {
	auth, err := OAuthAuthorization(http.MethodGet, t.SessionURL, &t.Tokens, t.now(), "")
	if err != nil {
		return "", err
	}
	sr, err := http.NewRequestWithContext(req.Context(), http.MethodGet, t.SessionURL, nil)
	if err != nil {
		return "", err
	}
	sr.Header.Set("Authorization", auth)
	sr.Header.Set("Content-Type", ContentType)
	sr.Header.Set(HeaderProtocolVersion, ProtocolVersion)
	if ua := req.Header.Get("User-Agent"); ua != "" {
		sr.Header.Set("User-Agent", ua)
	}
	resp, err := t.base().RoundTrip(sr)
	if err != nil {
		return "", fmt.Errorf("Apple's device-assignment service (%s): %w", t.SessionURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusBadRequest:
		return "", fmt.Errorf("%w (%d %s): it was revoked, expired, or replaced by a newer download. In ABM, open the MDM server, download a new token and import it",
			ErrSessionRefused, resp.StatusCode, strings.TrimSpace(string(body)))
	case resp.StatusCode != http.StatusOK:
		return "", &APIError{Status: resp.StatusCode, Code: errorCode(body), Endpoint: PathSession}
	}
	var out struct {
		Token string `json:"auth_session_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Token == "" {
		return "", fmt.Errorf("Apple's /session answer has no auth_session_token")
	}
	t.mu.Lock()
	t.session = out.Token
	t.mu.Unlock()
	return out.Token, nil
}
