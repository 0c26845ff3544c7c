// Package push wakes devices through APNs: HTTP/2 to
// https://api.push.apple.com/3/device/<token>, authenticated with the MDM
// push certificate, body {"mdm":"<PushMagic>"}, apns-push-type mdm. One
// connection is reused for all pushes, concurrency is bounded, every
// request has a time limit, 429 and 5xx answers are retried with backoff, and answers that mean the token is gone
// (410 Unregistered, BadDeviceToken, DeviceTokenNotForTopic) are reported
// as dead so the server stops pushing to them.
//
// Apple: "Sending MDM commands to a device" (the push with PushMagic,
// sent to the push certificate's Topic),
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device
// and "Handling error responses from APNs",
// https://developer.apple.com/documentation/usernotifications/handling-error-responses-from-apns
package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/pomona-mdm/pomona/pushcert"
)

// Production is Apple's APNs endpoint for MDM pushes.
const Production = "https://api.push.apple.com"

// Target is one channel to wake: the Token and PushMagic the channel's
// TokenUpdate check-in sent (https://developer.apple.com/documentation/devicemanagement/tokenupdaterequest).
type Target struct {
	Token     []byte
	PushMagic string
	// ID is the caller's name for the target (a channel id), echoed back.
	ID string
}

// Result is what APNs answered for one target.
type Result struct {
	ID     string
	Status int    // HTTP status, 0 when the request failed
	Reason string // APNs reason (e.g. BadDeviceToken)
	APNsID string
	Err    error
	// Dead means the token will never work again for this topic.
	Dead bool
}

// OK reports a delivered push.
func (r Result) OK() bool { return r.Status == http.StatusOK && r.Err == nil }

// Client sends MDM pushes with one push certificate.
type Client struct {
	URL   string
	Topic string
	// Transport carries the requests: New's is HTTP/2 over one TLS
	// connection with the push certificate (golang.org/x/net/http2).
	// Requests go to its RoundTrip directly: no redirect is followed.
	Transport http.RoundTripper
	// Timeout bounds every request, from sending it to reading APNs'
	// answer (each retry is a new request with a new bound).
	Timeout time.Duration
	// Concurrency bounds pushes in flight; Retries and Backoff govern 429/5xx.
	Concurrency int
	Retries     int
	Backoff     time.Duration

	prep   sync.Once
	header http.Header // the same for every push; the transport only reads it
	base   *url.URL
	prefix string // the path before the hex token: <URL's path>/3/device/
	err    error
}

// Limits of New's clients.
const (
	requestTimeout   = 30 * time.Second
	handshakeTimeout = 15 * time.Second
	// encoderTableSize bounds the HPACK table our requests' headers enter
	// (bytes; RFC 7541 section 4): 1 keeps every header out of it. Each
	// push has a new device token in :path, which with the default 4,096
	// entered the table and evicted an older entry every time (hashing and
	// map updates, about a tenth of a push's CPU) for no gain: a token is
	// not sent again on that connection soon. The constant headers are
	// sent as literals instead (~100 bytes more per push).
	encoderTableSize = 1
)

// New makes a client for cert talking to url (Production when empty, or a
// stand-in); rootCAs, when set, replaces the system roots for the server
// certificate. The client's Topic is the certificate's; it sends at most 32
// pushes at once, each within 30 s (TLS handshake within 15 s), and retries
// a transient failure 3 times after 0.5 s, 1 s and 2 s. It speaks HTTP/2
// only, as APNs does. It fails when cert has no key.
func New(cert *pushcert.Cert, url string, rootCAs *x509.CertPool) (*Client, error) {
	if cert == nil || cert.Key == nil {
		return nil, errors.New("push: no push certificate with its key")
	}
	if url == "" {
		url = Production
	}
	chain := [][]byte{cert.Cert.Raw}
	for _, c := range cert.Chain {
		chain = append(chain, c.Raw)
	}
	tr := &http2.Transport{
		TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: cert.Key, Leaf: cert.Cert}},
			RootCAs:      rootCAs,
			MinVersion:   tls.VersionTLS12,
		},
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
			defer cancel()
			return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
		},
		IdleConnTimeout:           10 * time.Minute,
		MaxEncoderHeaderTableSize: encoderTableSize,
	}
	return &Client{URL: strings.TrimRight(url, "/"), Topic: cert.Topic, Transport: tr, Timeout: requestTimeout,
		Concurrency: 32, Retries: 3, Backoff: 500 * time.Millisecond}, nil
}

// Close drops idle connections.
func (c *Client) Close() {
	if t, ok := c.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// prepare builds once what every request shares: the headers and the
// parsed endpoint.
func (c *Client) prepare() error {
	c.prep.Do(func() {
		c.header = http.Header{
			"Apns-Push-Type": {"mdm"},
			"Apns-Topic":     {c.Topic},
			"Apns-Priority":  {"10"},
			"Content-Type":   {"application/json"},
		}
		c.base, c.err = url.Parse(c.URL)
		if c.err == nil && c.base.Host == "" {
			c.err = fmt.Errorf("push: %q is not an absolute URL", c.URL)
		}
		if c.err == nil {
			c.prefix = strings.TrimRight(c.base.Path, "/") + "/3/device/"
		}
	})
	return c.err
}

// deadReasons mean the token is no longer valid for the topic.
var deadReasons = map[string]bool{"BadDeviceToken": true, "DeviceTokenNotForTopic": true, "Unregistered": true, "ExpiredToken": true}

// errTimeout is the cause of a request's context ended by its bound.
var errTimeout = errors.New("push: request timed out")

// Send pushes to one target: POST /3/device/<hex token> with
// apns-push-type mdm, apns-topic Topic, priority 10 and {"mdm":"<PushMagic>"}.
// A transport error (a request not answered within Timeout among them),
// 429 or 5xx is retried up to Retries times, waiting Backoff, then twice
// as long each time; the last answer is returned. Result.Dead is set for
// 410 and for the reasons that mean the token is gone (BadDeviceToken,
// DeviceTokenNotForTopic, Unregistered, ExpiredToken).
func (c *Client) Send(ctx context.Context, t Target) Result {
	s := sender{c: c, parent: ctx}
	defer s.close()
	return s.send(t)
}

// SendAll pushes to every target with at most Concurrency in flight and
// returns one Result per target, in the order of ts. It is Send for each
// target, by min(Concurrency, len(ts)) goroutines that take the targets
// in turn (a goroutine and a timer per push were a third of its CPU).
func (c *Client) SendAll(ctx context.Context, ts []Target) []Result {
	out := make([]Result, len(ts))
	n := min(max(c.Concurrency, 1), len(ts))
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(n)
	for range n {
		go func() {
			defer wg.Done()
			s := sender{c: c, parent: ctx}
			defer s.close()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ts) {
					return
				}
				out[i] = s.send(ts[i])
			}
		}()
	}
	wg.Wait()
	return out
}

// sender sends one request at a time, each bounded by Timeout with a
// context and a timer it keeps from request to request: a fired timer
// cancels the context (cause errTimeout) and the next request gets new
// ones. The bound covers sending the request and reading the answer.
type sender struct {
	c      *Client
	parent context.Context
	ctx    context.Context // nil: make a new one
	cancel context.CancelCauseFunc
	timer  *time.Timer
	d      time.Duration
}

// begin starts a request's bound and returns its context.
func (s *sender) begin() context.Context {
	d := s.c.Timeout
	if d <= 0 {
		d = requestTimeout
	}
	s.d = d
	if s.ctx == nil {
		ctx, cancel := context.WithCancelCause(s.parent)
		s.ctx, s.cancel = ctx, cancel
		s.timer = time.AfterFunc(d, func() { cancel(errTimeout) })
		return ctx
	}
	s.timer.Reset(d)
	return s.ctx
}

// end stops the bound begin started; a bound that fired has spent the
// context.
func (s *sender) end() {
	if !s.timer.Stop() {
		s.cancel(nil)
		s.ctx = nil
	}
}

func (s *sender) close() {
	if s.ctx != nil {
		s.timer.Stop()
		s.cancel(nil)
		s.ctx = nil
	}
}

func (s *sender) send(t Target) Result {
	c := s.c
	if err := c.prepare(); err != nil {
		return Result{ID: t.ID, Err: err}
	}
	body := mdmBody(t.PushMagic)
	path := devicePath(c.prefix, t.Token)
	var res Result
	for attempt := 0; ; attempt++ {
		res = s.once(path, body)
		res.ID = t.ID
		// Transient: no answer (Status 0, a transport error or the
		// timeout), 429 or 5xx. Any other answer is final — 400
		// BadDeviceToken, 403, 410 Unregistered are APNs' last word on
		// that push ("Handling error responses from APNs"): asking again
		// cost Retries requests and their backoff per dead token.
		transient := res.Status == 0 || res.Status == http.StatusTooManyRequests || res.Status >= 500
		if !transient || attempt >= c.Retries {
			return res
		}
		wait := c.Backoff << attempt
		select {
		case <-s.parent.Done():
			res.Err = s.parent.Err()
			return res
		case <-time.After(wait):
		}
	}
}

// mdmBody is {"mdm":"<magic>"} as encoding/json writes it.
func mdmBody(magic string) []byte {
	for i := 0; i < len(magic); i++ {
		if c := magic[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			m, _ := json.Marshal(map[string]string{"mdm": magic})
			return m
		}
	}
	// Nothing to escape (a PushMagic is a UUID): one allocation.
	return append(append(append(make([]byte, 0, len(magic)+10), `{"mdm":"`...), magic...), `"}`...)
}

// devicePath is prefix followed by the token in hex, in one allocation.
func devicePath(prefix string, token []byte) string {
	var b strings.Builder
	b.Grow(len(prefix) + hex.EncodedLen(len(token)))
	b.WriteString(prefix)
	var buf [64]byte
	for len(token) > 0 {
		n := min(len(token), len(buf)/2)
		hex.Encode(buf[:], token[:n])
		b.Write(buf[:2*n])
		token = token[n:]
	}
	return b.String()
}

// body is a request body (one allocation where io.NopCloser over a
// bytes.Reader is two).
type body struct{ bytes.Reader }

func (*body) Close() error { return nil }

func newBody(b []byte) *body {
	r := new(body)
	r.Reset(b)
	return r
}

func (s *sender) once(path string, b []byte) Result {
	c := s.c
	ctx := s.begin()
	defer s.end()
	u := *c.base
	u.Path, u.RawPath = path, ""
	req := (&http.Request{
		Method:        http.MethodPost,
		URL:           &u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        c.header,
		Body:          newBody(b),
		GetBody:       func() (io.ReadCloser, error) { return newBody(b), nil },
		ContentLength: int64(len(b)),
		Host:          u.Host,
	}).WithContext(ctx)
	resp, err := c.Transport.RoundTrip(req)
	if err != nil {
		if context.Cause(ctx) == errTimeout {
			err = fmt.Errorf("APNs did not answer within %v: %w", s.d, context.DeadlineExceeded)
		}
		return Result{Err: err}
	}
	defer resp.Body.Close()
	r := Result{Status: resp.StatusCode, APNsID: resp.Header.Get("apns-id")}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Reason string `json:"reason"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		json.Unmarshal(b, &e)
		r.Reason = e.Reason
		r.Dead = resp.StatusCode == http.StatusGone || deadReasons[e.Reason]
		r.Err = fmt.Errorf("APNs answered %d %s", resp.StatusCode, e.Reason)
	}
	return r
}
