package server

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/renewal"
	"github.com/pomona-mdm/pomona/store"
)

// renewalEvery is how often one instance of a cluster runs the renewal job.
const renewalEvery = time.Hour

// renewals runs the identity renewal job once per interval across the
// cluster (lease "identity-renewal"), the first time a minute after start
// (so frequent restarts do not starve it).
func (s *Server) renewals(ctx context.Context) {
	s.every(ctx, time.Minute, renewalEvery, func(ctx context.Context) {
		if !s.leased(ctx, "identity-renewal", renewalEvery-5*time.Minute) {
			return
		}
		if _, err := s.RunRenewals(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("identity renewal pass failed", "err", err)
		}
	})
}

// RunRenewals runs one pass of the renewal job now (the periodic runner,
// and tests with a moved clock).
func (s *Server) RunRenewals(ctx context.Context) (renewal.Report, error) {
	rep, err := s.Renewal.Run(ctx)
	if rep.Queued > 0 || rep.Failed > 0 {
		s.log.Info("identity renewal pass", "queued", rep.Queued, "failed", rep.Failed)
	}
	return rep, err
}

func (s *Server) pushTopic(ctx context.Context) (string, error) {
	c, err := s.LoadPushCert(ctx)
	if err != nil {
		return "", err
	}
	return c.Topic, nil
}

// renewalEvent turns renewal transitions into metrics and webhook events.
func (s *Server) renewalEvent(ctx context.Context, event string, r *store.Renewal, reason string) {
	s.Metrics.Renewals.WithLabelValues(event).Inc()
	data := map[string]any{"device": r.EnrollmentID, "serial": r.Serial, "command_uuid": r.CommandUUID, "attempt": r.Attempts}
	switch event {
	case renewal.Queued:
		s.events.Publish(ctx, "device.renewal_queued", data)
	case renewal.Failed:
		data["error"] = reason
		s.events.Publish(ctx, "device.renewal_failed", data)
	}
}

// identityRenewed: SCEP issued a renewed identity for an enrollment.
func (s *Server) identityRenewed(ctx context.Context, e *store.Enrollment, cert *x509.Certificate, renews string) {
	s.Metrics.Renewals.WithLabelValues("issued").Inc()
	s.log.Info("identity renewed", "device", e.ID, "enrollment_id", e.AppleEnrollmentID, "serial", pki.SerialHex(cert), "renews", renews,
		"not_after", cert.NotAfter)
	s.events.Publish(ctx, "device.identity_renewed", map[string]any{"device": e.ID, "enrollment_id": e.AppleEnrollmentID, "tenant_id": e.TenantID,
		"user_id": e.UserID, "serial": pki.SerialHex(cert), "renews": renews, "not_after": cert.NotAfter.UTC().Format(time.RFC3339)})
}
