package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/abm/abmstub"
	"github.com/pomona-mdm/pomona/demo"
	"github.com/pomona-mdm/pomona/jobs"
	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/store"
)

// FallbackDiscoveryPath is the path of a tenant's fallback discovery URL,
// the one registered with Apple Business Manager: a normal discovery
// endpoint that answers only for the tenant's domains.
func FallbackDiscoveryPath(tenantID string) string { return "/abm/discovery/" + tenantID }

// FallbackDiscoveryURL is its absolute URL.
func (s *Server) FallbackDiscoveryURL(tenantID string) string {
	return s.url(FallbackDiscoveryPath(tenantID))
}

// newABM is the Apple Business Manager connection: its GetToken answers
// go into the MDM channel (abm.TokenAnswerer), the com.apple.mdm.token
// capability into the tenant's profiles, and an imported token re-delivers
// the profiles handed out without it (connectABM).
func (s *Server) newABM() *abm.Service {
	a := &abm.Service{Store: s.Store, Sealer: s.sealer, BaseURL: s.cfg.ABMURL, DiscoveryURL: s.FallbackDiscoveryURL,
		Now: time.Now, Log: s.log, Metrics: metrics.NewABM(s.Metrics.Registry)}
	a.TokenAdded = func(ctx context.Context, tenantID string) {
		// In the background: a tenant may have many enrolled devices; the
		// hourly ABM pass picks up what this one leaves.
		go s.RedeliverForGetToken(context.WithoutCancel(ctx), tenantID)
	}
	s.Enroll.GetToken = a.HasToken
	return a
}

// connectABM hands the connection to the application layer (the API and
// the console call app.App.ABM).
func (s *Server) connectABM() { s.App.ABM = s.ABM }

// RedeliverForGetToken re-sends the enrollment profile, through the
// renewal path, to the enrolled devices of tenantID whose profile does
// not advertise com.apple.mdm.token while the tenant has a usable server
// token (at most one batch per call).
func (s *Server) RedeliverForGetToken(ctx context.Context, tenantID string) (int, error) {
	if ok, err := s.ABM.HasToken(ctx, tenantID); err != nil || !ok {
		return 0, err
	}
	cands, err := s.Store.WithoutGetToken(ctx, tenantID, 500)
	if err != nil {
		s.log.Warn("GetToken re-delivery: cannot list devices", "tenant", tenantID, "err", err)
		return 0, err
	}
	rep, err := s.Renewal.Redeliver(ctx, cands, "the tenant has an ABM server token now: the profile gains com.apple.mdm.token")
	if err != nil {
		s.log.Warn("GetToken re-delivery failed", "tenant", tenantID, "err", err)
		return rep.Queued, err
	}
	if rep.Queued > 0 || rep.Failed > 0 {
		s.log.Info("GetToken re-delivery: enrollment profiles re-sent", "tenant", tenantID, "queued", rep.Queued, "failed", rep.Failed)
	}
	return rep.Queued, nil
}

// abmEvery is the period of the ABM pass.
const abmEvery = time.Hour

// abmJobs are the ABM connection's periodic jobs: on every instance the
// server-token expiry metric is kept current (tokens imported on another
// instance included); on one instance per interval the registered
// fallback discovery URLs are re-asserted (idempotent at Apple), profiles
// that lack com.apple.mdm.token are re-delivered, and the tokens'
// warnings (expiry from 30 days) are logged.
func (s *Server) abmJobs() []jobs.Job {
	return []jobs.Job{
		{First: time.Minute, Interval: abmEvery, Run: func(ctx context.Context) {
			if _, err := s.ABM.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("ABM: cannot read the server tokens", "err", err)
			}
		}},
		{Lease: "abm", LeaseTTL: abmEvery - 5*time.Minute, First: 2 * time.Minute, Interval: abmEvery, Run: s.abmPass},
	}
}

// abmPass is the cluster-wide hourly pass of abmJobs.
func (s *Server) abmPass(ctx context.Context) {
	all, err := s.ABM.List(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("ABM: cannot read the server tokens", "err", err)
		}
		return
	}
	for _, p := range abm.Problems(all, time.Now()) {
		s.log.Warn(p)
	}
	if n, err := s.ABM.Reassert(ctx); err != nil {
		s.log.Warn("fallback discovery: re-assertion failed", "err", err)
	} else if n > 0 {
		s.log.Info("fallback discovery URLs re-asserted with Apple", "count", n)
	}
	done := map[string]bool{}
	for _, t := range all {
		if !done[t.TenantID] && abm.Usable(&t, time.Now()) {
			done[t.TenantID] = true
			s.RedeliverForGetToken(ctx, t.TenantID)
		}
	}
}

// abmNotes are the start-up summary's ABM line and warnings.
func (s *Server) abmNotes(ctx context.Context) (string, []string) {
	all, err := s.ABM.Refresh(ctx)
	if err != nil {
		return "unreadable: " + err.Error(), nil
	}
	tokens, _ := s.ABM.List(ctx, "")
	active := 0
	for _, t := range tokens {
		if abm.Usable(&t, time.Now()) {
			active++
		}
	}
	line := "no server token (GetToken refused; fallback discovery off)"
	if len(tokens) > 0 {
		line = fmt.Sprintf("%d server token(s), %d usable; Apple's service: %s", len(tokens), active, orDefault(s.cfg.ABMURL, abm.DefaultURL))
	}
	return line, all
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Demo: the ABM stand-in, an organisation owning the demo domain, an MDM
// server, and its server token imported for the demo tenant, so that the
// demo tenant answers GetToken (`pomona sim enroll --managed-devices-only`).
const demoABMName = "Demo ABM server (stand-in)"

func (s *Server) setupDemoABM(ctx context.Context) error {
	t, err := s.Store.TenantByDomain(ctx, demo.Domain)
	if err != nil {
		return fmt.Errorf("demo ABM stand-in: %w", err)
	}
	tenantID := t.ID
	stub := abmstub.New()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo ABM stand-in: %w", err)
	}
	srv := &http.Server{Handler: stub.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	s.demoABM = srv
	s.ABM.BaseURL = "http://" + ln.Addr().String()
	s.cfg.ABMURL = s.ABM.BaseURL
	// The stand-in is new at each start: earlier demo tokens name
	// credentials it does not know.
	old, err := s.ABM.List(ctx, tenantID)
	if err != nil {
		return err
	}
	for _, t := range old {
		if t.Name == demoABMName {
			if err := s.Store.DeleteABMServerToken(ctx, t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	row, err := s.ABM.Create(ctx, tenantID, demoABMName)
	if err != nil {
		return err
	}
	kp, err := s.ABM.KeyPairOf(row)
	if err != nil {
		return err
	}
	uuid := stub.AddServer(&abmstub.Org{Name: "Demo Corp (ABM stand-in)", ID: "DEMO", Domains: []string{demo.Domain}}, "Pomona demo")
	file, err := stub.Token(uuid, kp.Cert, time.Now().Add(365*24*time.Hour))
	if err != nil {
		return err
	}
	row, err = s.ABM.Import(ctx, row.ID, file)
	if err != nil {
		return fmt.Errorf("demo ABM server token: %w", err)
	}
	s.notes.demoABM = row.ID
	return nil
}
