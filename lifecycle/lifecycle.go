// Package lifecycle owns what happens to an enrollment after it began,
// other than identity renewal (package renewal) and the administrators'
// deletions (package app): recognising a re-enrolled device's likely
// predecessor, flagging devices that fell silent and retiring them by
// policy, and the enrollment.ended event every server-side ending sends
// (deletion, the disable policy, retirement). Each ending has an explicit
// MDM action (RemoveProfile queued; com.apple.unrecognized.device answered
// afterwards). See docs/lifecycle.md.
//
// Apple gives no hardware identifier under user enrollment (UDID, serial
// number, IMEI and MEID are forbidden; the EnrollmentID changes with every
// enrollment), so re-enrollment is recognised from what a user enrollment
// does reveal: the user, the platform, the model (MachineInfo PRODUCT, and
// on a Mac Authenticate's Model and DeviceName) and timing.
package lifecycle

import (
	"context"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Publisher queues webhook events (webhook.Publisher).
type Publisher interface {
	Publish(ctx context.Context, event string, data any)
}

// EventEnded is the webhook event of every server-side ending: deletion
// of the user or tenant, disabling the user (serve
// --unenroll-on-disable), retirement of a silent device.
const EventEnded = "enrollment.ended"

// Reasons of an enrollment.ended event.
const (
	EndUserDeleted   = "user_deleted"
	EndTenantDeleted = "tenant_deleted"
	EndUserDisabled  = "user_disabled"
	EndRetired       = "retired_silent"
)

// PublishEnded sends enrollment.ended for e: the device, Apple's
// EnrollmentID, tenant, user, platform, the reason (one of the End*
// constants), who or what ended it (an API key, "console:<email>",
// "policy: …") and when (RFC 3339). A nil p sends nothing.
func PublishEnded(ctx context.Context, p Publisher, e *store.Enrollment, reason, by string, at time.Time) {
	publish(ctx, p, EventEnded, map[string]any{"device": e.ID, "enrollment_id": e.AppleEnrollmentID, "tenant_id": e.TenantID,
		"user_id": e.UserID, "platform": e.Platform, "reason": reason, "by": by, "ended_at": at.UTC().Format(time.RFC3339)})
}

func publish(ctx context.Context, p Publisher, event string, data any) {
	if p != nil {
		p.Publish(ctx, event, data)
	}
}
