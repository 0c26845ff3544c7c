package push

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/store"
)

// Pusher wakes a device's channels with the current push certificate:
// it keeps one Client, rebuilt when the stored certificate changes (by
// serial number), counts every answer in pomona_pushes_total and records
// it on the channel (dead tokens are not pushed again).
type Pusher struct {
	// Certs loads the current push certificate (pushcert.Stored.Load).
	Certs func(context.Context) (*pushcert.Cert, error)
	// Results records the answers on their channels, one call per
	// fan-out.
	Results interface {
		SetPushResults(ctx context.Context, results []store.PushResult, at time.Time) error
	}
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// URL is the APNs endpoint (empty: Production); RootCAs, when set,
	// replaces the system roots for its certificate (a local stand-in).
	URL     string
	RootCAs *x509.CertPool

	mu     sync.Mutex
	client *Client
	serial string
}

func (p *Pusher) current(ctx context.Context) (*Client, error) {
	cert, err := p.Certs(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	serial := cert.Cert.SerialNumber.String()
	if p.client != nil && p.serial == serial {
		return p.client, nil
	}
	c, err := New(cert, p.URL, p.RootCAs)
	if err != nil {
		return nil, err
	}
	if p.client != nil {
		p.client.Close()
	}
	p.client, p.serial = c, serial
	return c, nil
}

// Push wakes channels in the background, within 2 minutes (the API and
// the command queue do not wait for APNs).
func (p *Pusher) Push(_ context.Context, chs []store.Channel) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p.PushNow(ctx, chs)
	}()
}

// PushNow wakes channels and returns APNs' answers, one per channel with a
// live push token; an error when there is none or no usable certificate.
func (p *Pusher) PushNow(ctx context.Context, chs []store.Channel) ([]Result, error) {
	var ts []Target
	for _, c := range chs {
		if len(c.PushToken) == 0 || c.PushMagic == "" || c.PushDead {
			continue
		}
		ts = append(ts, Target{ID: c.ID, Token: c.PushToken, PushMagic: c.PushMagic})
	}
	if len(ts) == 0 {
		return nil, errors.New("no channel with a live push token")
	}
	client, err := p.current(ctx)
	if err != nil {
		p.Log.Warn("cannot push", "err", err)
		return nil, err
	}
	res := client.SendAll(ctx, ts)
	now := time.Now()
	token := make(map[string][]byte, len(ts))
	for _, t := range ts {
		token[t.ID] = t.Token
	}
	record := make([]store.PushResult, 0, len(res))
	for _, r := range res {
		result := "ok"
		switch {
		case r.Dead:
			result = "dead-token"
		case r.Err != nil:
			result = "error"
		}
		p.Metrics.Pushes.WithLabelValues(result).Inc()
		record = append(record, store.PushResult{ChannelID: r.ID, Dead: r.Dead, Token: token[r.ID]})
		if r.Err != nil {
			p.Log.Info("push failed", "channel", r.ID, "status", r.Status, "reason", r.Reason, "dead", r.Dead, "err", r.Err)
		}
	}
	// One batched write for the whole fan-out (a write per channel was
	// most of a 100,000-device assignment's store work on PostgreSQL).
	if err := p.Results.SetPushResults(ctx, record, now); err != nil {
		p.Log.Warn("cannot record push results", "channels", len(record), "err", err)
	}
	return res, nil
}

// Close closes the current client's connections.
func (p *Pusher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		p.client.Close()
		p.client = nil
	}
}
