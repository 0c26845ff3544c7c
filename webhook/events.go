package webhook

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/store"
)

// The events Pomona publishes (docs/webhooks.md describes their data).
const (
	EventProfileIssued   = "enrollment.profile_issued"
	EventAuthenticated   = "device.authenticated"
	EventTokenUpdate     = "device.token_update"
	EventCheckedOut      = "device.checked_out"
	EventCommandResult   = "command.result"
	EventRenewalQueued   = "device.renewal_queued"
	EventIdentityRenewed = "device.identity_renewed"
	EventRenewalFailed   = "device.renewal_failed"
	EventIdentityExpired = "device.identity_expired"
	// Configuration profiles (docs/profiles.md): an item verified
	// installed by ProfileList, or failed (error chain, attempts, retry).
	EventProfileInstalled = "profile.installed"
	EventProfileFailed    = "profile.failed"
	// The enrollment lifecycle (package lifecycle, docs/lifecycle.md):
	// a new enrollment's likely predecessor, and every server-side ending.
	EventReenrolled      = "device.reenrolled"
	EventEnrollmentEnded = "enrollment.ended"
)

// Event names of the packages that report to the publisher (webhook does
// not import them: renewal and mdmservice sit above it).
const (
	renewalQueued         = "queued" // renewal.Queued
	renewalFailed         = "failed" // renewal.Failed
	deviceResultEventKind = "result" // mdmservice.Event.Kind of a command result
)

// Events lists every event Pomona publishes (a webhook subscribes to some).
var Events = []string{EventProfileIssued, EventAuthenticated, EventTokenUpdate, EventCheckedOut, EventCommandResult,
	EventRenewalQueued, EventIdentityRenewed, EventRenewalFailed, EventIdentityExpired, EventProfileInstalled, EventProfileFailed, EventReenrolled, EventEnrollmentEnded}

// deviceEvents maps the MDM channel's event kinds (mdmservice.Event.Kind)
// to webhook events; kinds not listed are not published.
var deviceEvents = map[string]string{
	"authenticate":        EventAuthenticated,
	"token-update":        EventTokenUpdate,
	"checkout":            EventCheckedOut,
	deviceResultEventKind: EventCommandResult,
	"identity-expired":    EventIdentityExpired,
}

// ProfileIssued publishes enrollment.profile_issued: the enrollment
// endpoint handed e's device its enrollment profile.
func (p *Publisher) ProfileIssued(ctx context.Context, e *store.Enrollment) {
	p.Publish(ctx, EventProfileIssued, map[string]any{"device": e.ID, "tenant_id": e.TenantID, "user_id": e.UserID,
		"platform": e.Platform, "product": e.Product, "device_signature": e.DeviceSignature})
}

// DeviceEvent publishes what the MDM channel reports (kind is
// mdmservice.Event.Kind: authenticate, token-update, checkout, result,
// identity-expired; others are ignored). channelID is Pomona's channel id
// or the channel's kind; commandUUID, requestType and status are set for
// results.
func (p *Publisher) DeviceEvent(ctx context.Context, kind string, e *store.Enrollment, channelID, commandUUID, requestType, status string) {
	name, ok := deviceEvents[kind]
	if !ok {
		return
	}
	// Built only when a webhook takes the event (publish): every device
	// result comes here.
	p.publish(ctx, name, func() any {
		data := map[string]any{"device": e.ID, "enrollment_id": e.AppleEnrollmentID, "tenant_id": e.TenantID,
			"user_id": e.UserID, "platform": e.Platform, "channel": channelID}
		if kind == deviceResultEventKind {
			data["command_uuid"], data["request_type"], data["status"] = commandUUID, requestType, status
		}
		return data
	})
}

// RenewalChanged publishes a renewal job transition (event is
// renewal.Queued or renewal.Failed; reason says why it failed).
func (p *Publisher) RenewalChanged(ctx context.Context, event string, r *store.Renewal, reason string) {
	data := map[string]any{"device": r.DeviceID, "serial": r.Serial, "command_uuid": r.CommandUUID, "attempt": r.Attempts}
	switch event {
	case renewalQueued:
		p.Publish(ctx, EventRenewalQueued, data)
	case renewalFailed:
		data["error"] = reason
		p.Publish(ctx, EventRenewalFailed, data)
	}
}

// IdentityRenewed publishes device.identity_renewed: SCEP issued cert to
// e's device, renewing the identity with serial renews (pki.SerialHex).
func (p *Publisher) IdentityRenewed(ctx context.Context, e *store.Enrollment, cert *x509.Certificate, renews string) {
	p.Publish(ctx, EventIdentityRenewed, map[string]any{"device": e.ID, "enrollment_id": e.AppleEnrollmentID, "tenant_id": e.TenantID,
		"user_id": e.UserID, "serial": pki.SerialHex(cert), "renews": renews, "not_after": cert.NotAfter.UTC().Format(time.RFC3339)})
}
