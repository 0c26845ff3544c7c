package mdmservice

import (
	"context"
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Store is everything the MDM channel reads and writes: the union of the
// narrow interfaces its parts take (store.Store has it all).
type Store interface {
	IdentityStore
	BearerStore
	CoreStore
}

// Config is what New assembles a channel from.
type Config struct {
	Store Store
	Auth  Authorizer
	// CA is the issuer of every identity certificate Pomona accepts.
	CA *x509.Certificate
	// Topic is the push topic check-ins must carry.
	Topic *TopicCache
	// Challenge is the WWW-Authenticate value of a tenant's 401.
	Challenge func(tenantID string) string
	// Emit, when set, hears what succeeded (webhooks, metrics).
	Emit func(ctx context.Context, e Event)
	// Observe, when set, counts messages by outcome (the Metrics
	// decorator).
	Observe func(message, outcome string)
	// Tokens answers GetToken (nil: NoTokens).
	Tokens TokenService
	// AfterResult, when set, follows every known result in its request
	// (ResultHook: the profile reconciler's result handling).
	AfterResult ResultHook
	// ProfileAck, when set, acknowledges profile installs in the result's
	// own transaction (ProfileAckHook).
	ProfileAck ProfileAckHook
	// Render renders template commands at delivery (Core.Render).
	Render func(ctx context.Context, q *store.QueuedCommand) ([]byte, error)
	// Undeliverable hears template commands that can never render for
	// their channel (Core.Undeliverable).
	Undeliverable UndeliverableHook
	Log           *slog.Logger
	Now           func() time.Time
}

// New stacks the MDM channel (docs/architecture.md, "One check-in's
// path"): Channel verifies the signature, decodes the message and
// resolves its sender once; then Metrics (messages by outcome) → Events
// (webhooks) → CertAuth
// (the certificate is bound to the message's EnrollmentID) → Bearer
// (ongoing authorization, the 401 re-authentication challenge) → Core
// (the store).
func New(c Config) *Channel {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	emit := c.Emit
	if emit == nil {
		emit = func(context.Context, Event) {}
	}
	var svc Service = &Core{Store: c.Store, Tokens: c.Tokens, AfterResult: c.AfterResult, ProfileAck: c.ProfileAck, Render: c.Render, Undeliverable: c.Undeliverable, Log: c.Log, Now: c.Now}
	svc = &Bearer{Next: svc, Auth: c.Auth, Store: c.Store, Challenge: c.Challenge}
	svc = CertAuth{Next: svc}
	svc = Events{Next: svc, Emit: emit}
	if c.Observe != nil {
		svc = Metrics{Next: svc, Observe: c.Observe}
	}
	return &Channel{
		Identity: &Identity{Store: c.Store, CA: c.CA, Log: c.Log, Now: c.Now, Events: emit},
		Topic:    c.Topic,
		Service:  svc,
	}
}
