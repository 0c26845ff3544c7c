package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/apikey"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/webhook"
)

// --- API keys ---

// KeyStore is what Keys needs.
type KeyStore interface {
	CreateAPIKey(ctx context.Context, k *store.APIKey) error
	APIKeys(ctx context.Context) ([]store.APIKey, error)
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
}

// Keys are the admin API key use cases.
type Keys struct {
	Store KeyStore
	Now   func() time.Time
}

// Create makes an API key named name (1–100 bytes after trimming spaces)
// and returns the key string — shown once, never stored — with its
// record. Errors: validation_failed on "name".
func (k *Keys) Create(ctx context.Context, name string) (string, *store.APIKey, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return "", nil, problem.Validation("name", "is required (at most 100 characters)")
	}
	key, rec := apikey.NewRecord(name, clock(k.Now))
	if err := k.Store.CreateAPIKey(ctx, rec); err != nil {
		return "", nil, err
	}
	return key, rec, nil
}

// List returns every API key, revoked ones included.
func (k *Keys) List(ctx context.Context) ([]store.APIKey, error) { return k.Store.APIKeys(ctx) }

// Revoke revokes the key id at once. Errors: store.ErrNotFound.
func (k *Keys) Revoke(ctx context.Context, id string) error {
	return k.Store.RevokeAPIKey(ctx, id, clock(k.Now))
}

// --- webhooks ---

// Sealer seals secrets the server must use later (webhook signing keys).
type Sealer interface {
	Seal(plaintext []byte, context string) []byte
}

// WebhookStore is what Webhooks needs.
type WebhookStore interface {
	CreateWebhook(ctx context.Context, w *store.Webhook) error
	Webhook(ctx context.Context, id string) (*store.Webhook, error)
	Webhooks(ctx context.Context) ([]store.Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
	Deliveries(ctx context.Context, webhookID string, limit int) ([]store.Delivery, error)
}

// Webhooks are the webhook subscription use cases.
type Webhooks struct {
	Store  WebhookStore
	Sealer Sealer
	Now    func() time.Time
}

// Create subscribes url (absolute http or https) to events (webhook.Events;
// none: all) with secret (at least 16 characters; "" makes one) and returns
// the subscription with the secret, shown once and kept sealed. Errors:
// validation_failed on "url", "events" or "secret".
func (w *Webhooks) Create(ctx context.Context, url string, events []string, secret string) (*store.Webhook, string, error) {
	return webhook.Create(ctx, w.Store, w.Sealer, url, events, secret, clock(w.Now))
}

// List returns every subscription.
func (w *Webhooks) List(ctx context.Context) ([]store.Webhook, error) { return w.Store.Webhooks(ctx) }

// Delete removes the subscription id. Errors: store.ErrNotFound.
func (w *Webhooks) Delete(ctx context.Context, id string) error {
	return w.Store.DeleteWebhook(ctx, id)
}

// Deliveries returns the latest n deliveries of the subscription id,
// newest first. Errors: store.ErrNotFound for an unknown id.
func (w *Webhooks) Deliveries(ctx context.Context, id string, n int) ([]store.Delivery, error) {
	if _, err := w.Store.Webhook(ctx, id); err != nil {
		return nil, err
	}
	return w.Store.Deliveries(ctx, id, n)
}

// --- push certificate ---

// PushCertStore is where the push certificate is kept.
type PushCertStore interface {
	Load(ctx context.Context) (*pushcert.Cert, error)
	Save(ctx context.Context, c *pushcert.Cert) error
	SaveCSRKey(ctx context.Context, c *pushcert.Cert) error
	// Changed tells the server the certificate changed (metrics, caches).
	Changed(c *pushcert.Cert)
}

// PushCerts are the APNs push certificate use cases.
type PushCerts struct {
	Store PushCertStore
	Now   func() time.Time
}

// Get returns the push certificate. Errors: NotFound when none is set up.
func (p *PushCerts) Get(ctx context.Context) (*pushcert.Cert, error) {
	c, err := p.Store.Load(ctx)
	if errors.Is(err, pushcert.ErrNone) {
		return nil, &problem.Error{Kind: problem.NotFound, Code: "not_found", Message: err.Error(), Err: err}
	}
	return c, err
}

// PushCertUpload is a certificate from Apple: PEM (with the key, unless
// the CSR was made by this server) or PKCS#12 with its password.
type PushCertUpload struct {
	CertPEM, KeyPEM []byte
	PKCS12          []byte
	Password        string
	// AllowTopicChange must be set to replace a certificate with one of
	// another topic: every enrolled device would stop answering pushes.
	AllowTopicChange bool
}

// Import checks and stores a push certificate and tells the server it
// changed. Errors: Invalid invalid_request when neither or both forms are
// given; Unprocessable invalid_certificate when it cannot be used;
// Conflict topic_change when its topic differs and AllowTopicChange is
// not set.
func (p *PushCerts) Import(ctx context.Context, in PushCertUpload) (*pushcert.Cert, error) {
	var c *pushcert.Cert
	var err error
	switch {
	case len(in.PKCS12) > 0 && len(in.CertPEM) > 0:
		return nil, problem.Coded(problem.Invalid, "invalid_request", "give either certificate (+ private_key) or pkcs12, not both")
	case len(in.PKCS12) > 0:
		c, err = pushcert.ParsePKCS12(in.PKCS12, in.Password)
	case len(in.CertPEM) > 0:
		c, err = pushcert.ParsePEM(in.CertPEM, in.KeyPEM)
	default:
		return nil, problem.Coded(problem.Invalid, "invalid_request", "give certificate (PEM, with private_key unless the CSR was made by this server) or pkcs12 (base64) with password")
	}
	if err != nil {
		return nil, problem.Coded(problem.Unprocessable, "invalid_certificate", "the certificate cannot be used: %v", err)
	}
	old, err := p.Store.Load(ctx)
	if err != nil && !errors.Is(err, pushcert.ErrNone) {
		return nil, err
	}
	if err := pushcert.CheckReplacement(old, c, in.AllowTopicChange, p.now()); err != nil {
		if errors.Is(err, pushcert.ErrTopicChange) {
			return nil, problem.Coded(problem.Conflict, "topic_change", "%s (allow_topic_change=true)", err.Error())
		}
		return nil, problem.Coded(problem.Unprocessable, "invalid_certificate", "%v", err)
	}
	if err := p.Store.Save(ctx, c); err != nil {
		if errors.Is(err, pushcert.ErrNoCSRKey) || errors.Is(err, pushcert.ErrCSRKeyMismatch) {
			return nil, problem.Coded(problem.Unprocessable, "invalid_certificate", "%v", err)
		}
		// The server's own failure (its store, the sealing key): a 500
		// whose cause is logged, never a 422 showing driver text.
		return nil, fmt.Errorf("saving the push certificate: %w", err)
	}
	p.Store.Changed(c)
	return c, nil
}

// CSR makes a new key (kept on the server) and a certificate signing
// request (PEM) to have signed for Apple's push certificate portal.
func (p *PushCerts) CSR(ctx context.Context) ([]byte, error) {
	csr, key, err := pushcert.NewCSR("Pomona MDM push")
	if err != nil {
		return nil, err
	}
	if err := p.Store.SaveCSRKey(ctx, &pushcert.Cert{Key: key}); err != nil {
		return nil, err
	}
	return csr, nil
}

func (p *PushCerts) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

// --- audit log and figures ---

// AuditStore is the audit log.
type AuditStore interface {
	AppendAudit(ctx context.Context, e *store.AuditEntry) error
	Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)
}

// Audit records and reads the audit log.
type Audit struct {
	Store AuditStore
}

// Record appends one entry; it is written even when ctx is cancelled (the
// request may be over by then).
func (a *Audit) Record(ctx context.Context, e *store.AuditEntry) error {
	return a.Store.AppendAudit(context.WithoutCancel(ctx), e)
}

// RequestAudit is the audit entry of one admin request, handed down in
// the request's context (WithRequestAudit) so that a use case that writes
// can append it in its own transaction: the change and its record then
// share one durable commit (one fsync on SQLite, not two), and a record
// of success exists only if the change committed. Use cases that do so:
// Commands.Enqueue and Commands.EnqueueBulk. Whoever made the entry
// writes it itself (Audit.Record) when no use case did (Written false):
// a failed request, a replayed idempotent one, every other call.
type RequestAudit struct {
	// Entry is the record; Entry.Status is the status the caller answers
	// when the use case succeeds (0: the caller has not said, and no use
	// case writes the entry).
	Entry   store.AuditEntry
	claimed bool
	written bool
}

type requestAuditKey struct{}

// WithRequestAudit returns ctx carrying ra.
func WithRequestAudit(ctx context.Context, ra *RequestAudit) context.Context {
	return context.WithValue(ctx, requestAuditKey{}, ra)
}

// RequestAuditFrom returns the request's audit entry, or nil.
func RequestAuditFrom(ctx context.Context) *RequestAudit {
	ra, _ := ctx.Value(requestAuditKey{}).(*RequestAudit)
	return ra
}

// Written reports whether a use case committed the entry (its ID is set).
func (ra *RequestAudit) Written() bool { return ra != nil && ra.written }

// claimRequestAudit returns the entry of ctx's request for the one write
// about to run, or nil (none, no success status given, or claimed by an
// earlier write of the same request). The caller marks it written only
// after its transaction committed with the entry inside.
func claimRequestAudit(ctx context.Context) *RequestAudit {
	ra := RequestAuditFrom(ctx)
	if ra == nil || ra.claimed || ra.Entry.Status == 0 {
		return nil
	}
	ra.claimed = true
	return ra
}

// List returns a page of entries, newest first (f.Limit default 100, at
// most 1000), and the id to continue before (0 when this page is the
// last).
func (a *Audit) List(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, int64, error) {
	f.Limit = limit(f.Limit)
	es, err := a.Store.Audit(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if len(es) == f.Limit {
		next = es[len(es)-1].ID
	}
	return es, next, nil
}

// StatsStore is what Stats reads.
type StatsStore interface {
	CountTenants(ctx context.Context) (int, error)
	CountUsers(ctx context.Context) (int, error)
	Dashboard(ctx context.Context, since, idleBefore time.Time) (*store.Dashboard, error)
	Backend() string
}

// Stats are the figures of the server page and the dashboard.
type Stats struct {
	Store StatsStore
}

// Counts returns the number of tenants and users.
func (s *Stats) Counts(ctx context.Context) (tenants, users int, err error) {
	if tenants, err = s.Store.CountTenants(ctx); err != nil {
		return 0, 0, err
	}
	users, err = s.Store.CountUsers(ctx)
	return tenants, users, err
}

// Dashboard returns enrollments by platform and OS version, enrollments
// per day since since, and the devices not seen since idleBefore.
func (s *Stats) Dashboard(ctx context.Context, since, idleBefore time.Time) (*store.Dashboard, error) {
	return s.Store.Dashboard(ctx, since, idleBefore)
}

// Backend names the store ("sqlite" or "postgres").
func (s *Stats) Backend() string { return s.Store.Backend() }
