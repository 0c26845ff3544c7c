package server

import (
	"log/slog"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/mdmservice"
)

// newMDMChannel builds the MDM channel (mdmservice.New stacks its
// decorators) and the push-topic cache that pushChanged invalidates.
func (s *Server) newMDMChannel(log *slog.Logger, clock func() time.Time) *mdmservice.Channel {
	s.topics = &mdmservice.TopicCache{Load: s.pushTopic, Now: time.Now}
	return mdmservice.New(mdmservice.Config{
		Store: s.Store, Auth: s.Auth, CA: s.CA.Cert, Topic: s.topics, Emit: s.deviceEvent, Log: log, Now: clock,
		Challenge: func(tenantID string) string { return enroll.Challenge(s.LoginURL(tenantID)) },
		Observe:   func(message, outcome string) { s.Metrics.MDMMessages.WithLabelValues(message, outcome).Inc() },
		Tokens:    abm.TokenAnswerer{Service: s.ABM},
	})
}
