// Package webhook tells other systems what happens in Pomona: events
// (enrollment.profile_issued, device.authenticated, device.token_update,
// device.checked_out, command.result) are queued in the store for every
// subscribed webhook and delivered by a dispatcher with retries. Each
// delivery is signed:
//
//	Pomona-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
//
// Receivers recompute the HMAC, compare in constant time, and reject old
// timestamps to stop replays.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/jobs"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// Sign returns the Pomona-Signature header value for body at t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a Pomona-Signature header (for receivers and tests):
// correct HMAC and a timestamp within tolerance of now.
func Verify(secret, body []byte, header string, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("webhook: malformed signature header")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook: signature timestamp outside the tolerance")
	}
	want := Sign(secret, body, time.Unix(sec, 0))
	if subtle.ConstantTimeCompare([]byte(want), []byte("t="+ts+",v1="+sig)) != 1 {
		return errors.New("webhook: signature mismatch")
	}
	return nil
}

// NewSecret returns a random signing secret.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + hex.EncodeToString(b)
}

// Envelope is the JSON body of every delivery.
type Envelope struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	Data      any       `json:"data"`
}

// Publisher queues events for delivery.
type Publisher struct {
	Store interface {
		QueueEvent(ctx context.Context, event string, payload func() ([]byte, error), now time.Time) error
	}
	Log *slog.Logger
	Now func() time.Time
}

// Publish queues one event. Failures are logged: an event must never
// fail the device request that caused it. The envelope is encoded only
// when a webhook takes event (store.WebhookStore.QueueEvent).
func (p *Publisher) Publish(ctx context.Context, event string, data any) {
	p.publish(ctx, event, func() any { return data })
}

// publish is Publish with the event's data built by data, called only
// when a webhook takes event: a device's result event builds its map of
// nine values (some 28 allocations per result) for nobody otherwise.
func (p *Publisher) publish(ctx context.Context, event string, data func() any) {
	now := p.Now()
	encode := func() ([]byte, error) {
		id := make([]byte, 12)
		rand.Read(id)
		body, err := json.Marshal(Envelope{ID: "evt_" + hex.EncodeToString(id), Type: event, CreatedAt: now.UTC(), Data: data()})
		if err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		return body, nil
	}
	if err := p.Store.QueueEvent(context.WithoutCancel(ctx), event, encode, now); err != nil {
		p.Log.Error("webhook: cannot queue event", "event", event, "err", err)
	}
}

// Opener unseals webhook secrets.
type Opener interface {
	Open(sealed []byte, context string) ([]byte, error)
}

// SecretContext is the sealing context of a webhook's secret.
func SecretContext(id string) string { return "webhook:" + id }

// Dispatcher delivers queued events.
type Dispatcher struct {
	Store  store.WebhookStore
	Opener Opener
	HTTP   *http.Client
	Log    *slog.Logger
	Now    func() time.Time
	// Backoff is the first retry delay; each retry doubles it.
	Backoff     time.Duration
	MaxAttempts int
	Interval    time.Duration // how often to look for due deliveries
}

// Run delivers until ctx ends: at once, then every Interval, on every
// instance (a delivery is claimed in the store, so instances share the
// queue).
func (d *Dispatcher) Run(ctx context.Context) { jobs.Every(ctx, 0, d.Interval, d.Tick) }

// Tick delivers what is due now.
func (d *Dispatcher) Tick(ctx context.Context) {
	due, err := d.Store.DueDeliveries(ctx, d.Now(), 2*time.Minute, 100)
	if err != nil {
		if ctx.Err() == nil {
			d.Log.Warn("webhook: cannot read due deliveries", "err", err)
		}
		return
	}
	hooks := map[string]*store.Webhook{}
	for _, dl := range due {
		w, ok := hooks[dl.WebhookID]
		if !ok {
			w, err = d.Store.Webhook(ctx, dl.WebhookID)
			if err != nil {
				continue // deleted meanwhile: its deliveries went with it
			}
			hooks[dl.WebhookID] = w
		}
		d.deliver(ctx, w, dl)
	}
}

func (d *Dispatcher) deliver(ctx context.Context, w *store.Webhook, dl store.Delivery) {
	now := d.Now()
	secret, err := d.Opener.Open(w.Secret, SecretContext(w.ID))
	if err != nil {
		d.Log.Error("webhook: cannot open the secret", "webhook", w.ID, "err", err)
		d.Store.FinishDelivery(ctx, dl.ID, store.DeliveryFailed, "cannot open the signing secret", now, now)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(dl.Payload))
	if err != nil {
		d.Store.FinishDelivery(ctx, dl.ID, store.DeliveryFailed, err.Error(), now, now)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Pomona-Webhooks/1")
	req.Header.Set("Pomona-Event", dl.Event)
	req.Header.Set("Pomona-Delivery", strconv.FormatInt(dl.ID, 10))
	req.Header.Set("Pomona-Signature", Sign(secret, dl.Payload, now))
	resp, err := d.HTTP.Do(req)
	var problem string
	if err != nil {
		problem = err.Error()
	} else {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			problem = fmt.Sprintf("HTTP %d", resp.StatusCode)
		}
	}
	if problem == "" {
		d.Store.FinishDelivery(ctx, dl.ID, store.DeliveryDelivered, "", now, now)
		return
	}
	attempt := dl.Attempts + 1
	if attempt >= d.MaxAttempts {
		d.Log.Warn("webhook delivery failed for good", "webhook", w.ID, "event", dl.Event, "attempts", attempt, "err", problem)
		d.Store.FinishDelivery(ctx, dl.ID, store.DeliveryFailed, problem, now, now)
		return
	}
	next := now.Add(d.Backoff << (attempt - 1))
	d.Log.Info("webhook delivery will be retried", "webhook", w.ID, "event", dl.Event, "attempt", attempt, "next", next, "err", problem)
	d.Store.FinishDelivery(ctx, dl.ID, store.DeliveryPending, problem, next, now)
}

// Create validates and stores a webhook. An empty secret gets a random
// one; the secret is returned once and kept sealed.
func Create(ctx context.Context, st interface {
	CreateWebhook(ctx context.Context, w *store.Webhook) error
}, sealer interface {
	Seal(plaintext []byte, context string) []byte
}, rawURL string, events []string, secret string, now time.Time) (*store.Webhook, string, error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, "", problem.Validation("url", "must be an absolute http(s) URL")
	}
	for _, e := range events {
		if !slices.Contains(Events, e) {
			return nil, "", problem.Validation("events", "unknown event %s", e)
		}
	}
	if secret == "" {
		secret = NewSecret()
	} else if len(secret) < 16 {
		return nil, "", problem.Validation("secret", "must be at least 16 characters")
	}
	id := directory.NewID("wh")
	hook := &store.Webhook{ID: id, URL: u.String(), Events: events, Secret: sealer.Seal([]byte(secret), SecretContext(id)),
		CreatedAt: now.UTC().Truncate(time.Microsecond)}
	if err := st.CreateWebhook(ctx, hook); err != nil {
		return nil, "", err
	}
	return hook, secret, nil
}

// NewDispatcher is the server's dispatcher: deliveries over HTTPS with a
// 15 s timeout, 8 attempts, the first retry after backoff (0: 10 s) and
// doubling, the queue looked at every second (or every backoff when
// shorter, as tests set it).
func NewDispatcher(st store.WebhookStore, opener Opener, backoff time.Duration, log *slog.Logger) *Dispatcher {
	if backoff <= 0 {
		backoff = 10 * time.Second
	}
	return &Dispatcher{Store: st, Opener: opener, HTTP: &http.Client{Timeout: 15 * time.Second}, Log: log, Now: time.Now,
		Backoff: backoff, MaxAttempts: 8, Interval: min(time.Second, backoff)}
}
