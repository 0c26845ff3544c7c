// Package push wakes devices through APNs: HTTP/2 to
// https://api.push.apple.com/3/device/<token>, authenticated with the MDM
// push certificate, body {"mdm":"<PushMagic>"}, apns-push-type mdm. One
// connection is reused for all pushes, concurrency is bounded, 429 and 5xx
// answers are retried with backoff, and answers that mean the token is gone
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
	"net/http"
	"strings"
	"sync"
	"time"

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
	HTTP  *http.Client
	// Concurrency bounds pushes in flight; Retries and Backoff govern 429/5xx.
	Concurrency int
	Retries     int
	Backoff     time.Duration
}

// New makes a client for cert talking to url (Production when empty, or a
// stand-in); rootCAs, when set, replaces the system roots for the server
// certificate. The client's Topic is the certificate's; it sends at most 32
// pushes at once, each within 30 s, and retries a transient failure 3
// times after 0.5 s, 1 s and 2 s. It fails when cert has no key.
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
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: cert.Key, Leaf: cert.Cert}},
			RootCAs:      rootCAs,
			MinVersion:   tls.VersionTLS12,
		},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     10 * time.Minute,
		TLSHandshakeTimeout: 15 * time.Second,
	}
	return &Client{URL: strings.TrimRight(url, "/"), Topic: cert.Topic, HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		Concurrency: 32, Retries: 3, Backoff: 500 * time.Millisecond}, nil
}

// Close drops idle connections.
func (c *Client) Close() { c.HTTP.CloseIdleConnections() }

// deadReasons mean the token is no longer valid for the topic.
var deadReasons = map[string]bool{"BadDeviceToken": true, "DeviceTokenNotForTopic": true, "Unregistered": true, "ExpiredToken": true}

// Send pushes to one target: POST /3/device/<hex token> with
// apns-push-type mdm, apns-topic Topic, priority 10 and {"mdm":"<PushMagic>"}.
// A transport error, 429 or 5xx is retried up to Retries times, waiting
// Backoff, then twice as long each time; the last answer is returned.
// Result.Dead is set for 410 and for the reasons that mean the token is
// gone (BadDeviceToken, DeviceTokenNotForTopic, Unregistered, ExpiredToken).
func (c *Client) Send(ctx context.Context, t Target) Result {
	body, _ := json.Marshal(map[string]string{"mdm": t.PushMagic})
	url := c.URL + "/3/device/" + hex.EncodeToString(t.Token)
	var res Result
	for attempt := 0; ; attempt++ {
		res = c.once(ctx, url, body)
		res.ID = t.ID
		transient := res.Err != nil || res.Status == http.StatusTooManyRequests || res.Status >= 500
		if !transient || attempt >= c.Retries {
			return res
		}
		wait := c.Backoff << attempt
		select {
		case <-ctx.Done():
			res.Err = ctx.Err()
			return res
		case <-time.After(wait):
		}
	}
}

func (c *Client) once(ctx context.Context, url string, body []byte) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{Err: err}
	}
	req.Header.Set("apns-push-type", "mdm")
	req.Header.Set("apns-topic", c.Topic)
	req.Header.Set("apns-priority", "10")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
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

// SendAll pushes to every target with at most Concurrency in flight and
// returns one Result per target, in the order of ts.
func (c *Client) SendAll(ctx context.Context, ts []Target) []Result {
	out := make([]Result, len(ts))
	n := c.Concurrency
	if n < 1 {
		n = 1
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i := range ts {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = c.Send(ctx, ts[i])
		}(i)
	}
	wg.Wait()
	return out
}
