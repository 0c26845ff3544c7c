package server

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/profiles"
	"github.com/pomona-mdm/pomona/store"
)

// profileTick is how often every instance looks for due reconciler work
// without being woken (retries and verifications come due by time; an
// idle queue costs one indexed query per tick).
const profileTick = 15 * time.Second

// setupProfiles builds the reconciler and connects it to the use cases
// (App.Profiles wakes it on every change) and to SCEP (profiles' user
// certificates).
func (s *Server) setupProfiles(cfg Config, log *slog.Logger, clock func() time.Time) {
	s.ProfileJob = &profiles.Job{
		Store: s.Store, Commands: s.Commands, Holder: s.jobs.Instance, VerifyEvery: cfg.ProfileVerifyInterval, Now: clock, Log: log,
		Signer: s.profileSigner,
		Notify: s.profileEvent, SCEPURL: s.url(SCEPPath),
	}
	s.Enroll.ProfileCerts = s.Store
	s.ProfileJob.Wake() // makes the wake channel before anyone calls it
	s.App.Profiles.Changed = s.ProfileJob.Wake
}

// profileSigner is Pomona's profile signer, as it is now: the
// reconciler signs shared profiles with it at planning, the MDM channel
// signs profiles rendered at delivery with it (profiles.Deliverer).
func (s *Server) profileSigner() *profiles.Signer {
	return &profiles.Signer{Cert: s.Issuer.ProfileSigner, Key: s.Issuer.ProfileSignerKey, Chain: []*x509.Certificate{s.Issuer.CA.Cert}}
}

// profileDeviceEvent feeds the reconciler from the MDM channel: a
// TokenUpdate (the first one completes enrollment) queues the device.
func (s *Server) profileDeviceEvent(ctx context.Context, e mdmservice.Event) {
	if e.Kind == "token-update" {
		s.ProfileJob.Enrolled(ctx, e.Enrollment)
	}
}

// profileResult is the MDM channel's result hook (mdmservice.ResultHook):
// results of profile commands move their items in the device's request,
// and an acknowledged install hands the device its verifying ProfileList
// with the same answer.
func (s *Server) profileResult(ctx context.Context, enr *store.Enrollment, channelID, requestType string, res *mdm.Result) bool {
	return s.ProfileJob.Result(ctx, enr, channelID, requestType, res)
}

// profileAck is the MDM channel's mdmservice.ProfileAckHook: an
// acknowledged install or ProfileList moves the profile items in the
// result's own transaction (one durable commit per answer, not two). The job is
// built after the channel (setupProfiles), hence the indirection.
func (s *Server) profileAck(ctx context.Context, enr *store.Enrollment, res *mdm.Result) (*store.ProfileAck, func(context.Context, *store.ProfileAck)) {
	return s.ProfileJob.AckInResult(ctx, enr, res)
}

// profileEvent publishes profile.installed and profile.failed.
func (s *Server) profileEvent(ctx context.Context, event string, enr *store.Enrollment, it *store.ProfileItem) {
	data := map[string]any{"device": enr.ID, "enrollment_id": enr.AppleEnrollmentID, "tenant_id": enr.TenantID, "user_id": enr.UserID,
		"platform": enr.Platform, "profile_id": it.ProfileID, "identifier": it.Identifier, "version": it.Version, "state": it.State}
	if it.Error != "" {
		data["error"], data["attempts"] = it.Error, it.Attempts
		if !it.NextRetry.IsZero() {
			data["next_retry"] = it.NextRetry
		}
	}
	s.events.Publish(ctx, event, data)
}
