package store

import (
	"context"
	"time"
)

// Webhook is a subscription. Secret is sealed by the caller.
type Webhook struct {
	ID        string
	URL       string
	Secret    []byte
	Events    []string // empty: every event
	CreatedAt time.Time
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one event for one webhook.
type Delivery struct {
	ID          int64
	WebhookID   string
	Event       string
	Payload     []byte
	Status      string
	Attempts    int
	NextAt      time.Time
	LastError   string
	CreatedAt   time.Time
	DeliveredAt time.Time
}

// WebhookStore keeps subscriptions and their deliveries.
type WebhookStore interface {
	CreateWebhook(ctx context.Context, w *Webhook) error
	Webhook(ctx context.Context, id string) (*Webhook, error)
	Webhooks(ctx context.Context) ([]Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
	// QueueEvent adds a delivery for every webhook subscribed to event,
	// each with the body payload returns. payload is called at most once,
	// and only when a webhook takes event: most events (a command result
	// on every answer) have no subscriber and then cost no encoding.
	// payload's error is QueueEvent's, and nothing is queued.
	QueueEvent(ctx context.Context, event string, payload func() ([]byte, error), now time.Time) error
	// DueDeliveries returns pending deliveries whose time has come and
	// pushes their next_at forward by lease, so that a concurrent caller
	// does not take the same ones.
	DueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// FinishDelivery records an attempt: delivered, retry at next, or failed.
	FinishDelivery(ctx context.Context, id int64, status, lastError string, next time.Time, now time.Time) error
	Deliveries(ctx context.Context, webhookID string, limit int) ([]Delivery, error)
}
