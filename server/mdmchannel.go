package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/profiles"
	"github.com/pomona-mdm/pomona/store"
)

// newMDMChannel builds the MDM channel (mdmservice.New stacks its
// decorators) and the push-topic cache that pushChanged invalidates.
func (s *Server) newMDMChannel(log *slog.Logger, clock func() time.Time) *mdmservice.Channel {
	s.topics = &mdmservice.TopicCache{Load: s.PushCerts.Topic, Now: time.Now}
	return mdmservice.New(mdmservice.Config{
		Store: s.Store, Auth: s.Auth, CA: s.CA.Cert, Topic: s.topics, Emit: s.deviceEvent, Log: log, Now: clock,
		Challenge:   func(tenantID string) string { return enroll.WWWAuthenticate(s.LoginURL(tenantID)) },
		Observe:     func(message, outcome string) { s.Metrics.MDMMessages.WithLabelValues(message, outcome).Inc() },
		Tokens:      abm.TokenAnswerer{Service: s.ABM},
		AfterResult: s.profileResult,
		ProfileAck:  s.profileAck,
		// The one place template commands (profiles with per-user
		// variables) are rendered for the device fetching them.
		Render: (&profiles.Deliverer{Signer: s.profileSigner, Now: clock, Log: log,
			UnknownMarker: func(string) { s.Metrics.Commands.WithLabelValues("render_unknown_marker").Inc() }}).Render,
		// A template that can never render for a device fails that
		// device's item (the job is built after the channel: indirection).
		Undeliverable: func(ctx context.Context, enr *store.Enrollment, q *store.QueuedCommand, err error) {
			s.ProfileJob.Undeliverable(ctx, enr, q, err)
		},
	})
}

// pushChanged follows a new (or no longer usable) push certificate: the
// expiry metric, and the topic cache is emptied so the next check-in
// compares against the new Topic at once.
func (s *Server) pushChanged(notAfter time.Time) {
	s.Metrics.SetPushCertExpiry(notAfter)
	if s.topics != nil {
		s.topics.Invalidate()
	}
}
