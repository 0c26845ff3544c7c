package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/pomona-mdm/pomona/push"
	"github.com/pomona-mdm/pomona/store"
)

// pusher sends pushes with the current push certificate, rebuilding its
// APNs client when the certificate changes, and records dead tokens.
type pusher struct {
	s       *Server
	url     string
	rootCAs *x509.CertPool

	mu     sync.Mutex
	client *push.Client
	serial string
}

func newPusher(s *Server, url, caFile string) (*pusher, error) {
	p := &pusher{s: s, url: url}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--apns-ca-file: %w", err)
		}
		p.rootCAs = x509.NewCertPool()
		if !p.rootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--apns-ca-file %s holds no PEM certificate", caFile)
		}
	}
	return p, nil
}

func (p *pusher) current(ctx context.Context) (*push.Client, error) {
	cert, err := p.s.LoadPushCert(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	serial := cert.Cert.SerialNumber.String()
	if p.client != nil && p.serial == serial {
		return p.client, nil
	}
	c, err := push.New(cert, p.url, p.rootCAs)
	if err != nil {
		return nil, err
	}
	if p.client != nil {
		p.client.Close()
	}
	p.client, p.serial = c, serial
	return c, nil
}

// Push wakes channels in the background (the API does not wait for APNs).
func (p *pusher) Push(_ context.Context, chs []store.Channel) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p.PushNow(ctx, chs)
	}()
}

// PushNow wakes channels and returns APNs' answers.
func (p *pusher) PushNow(ctx context.Context, chs []store.Channel) ([]push.Result, error) {
	var ts []push.Target
	for _, c := range chs {
		if len(c.PushToken) == 0 || c.PushMagic == "" || c.PushDead {
			continue
		}
		ts = append(ts, push.Target{ID: c.ID, Token: c.PushToken, PushMagic: c.PushMagic})
	}
	if len(ts) == 0 {
		return nil, errors.New("no channel with a live push token")
	}
	client, err := p.current(ctx)
	if err != nil {
		p.s.log.Warn("cannot push", "err", err)
		return nil, err
	}
	res := client.SendAll(ctx, ts)
	now := time.Now()
	for _, r := range res {
		result := "ok"
		switch {
		case r.Dead:
			result = "dead-token"
		case r.Err != nil:
			result = "error"
		}
		p.s.Metrics.Pushes.WithLabelValues(result).Inc()
		if err := p.s.Store.SetPushResult(ctx, r.ID, r.Dead, now); err != nil {
			p.s.log.Warn("cannot record push result", "channel", r.ID, "err", err)
		}
		if r.Err != nil {
			p.s.log.Info("push failed", "channel", r.ID, "status", r.Status, "reason", r.Reason, "dead", r.Dead, "err", r.Err)
		}
	}
	return res, nil
}
