package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

func (s *Store) CreateWebhook(ctx context.Context, w *store.Webhook) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO webhooks (id, url, secret, events, created_at) VALUES (?, ?, ?, ?, ?)`,
		w.ID, w.URL, w.Secret, strings.Join(w.Events, ","), toMicros(w.CreatedAt))
	s.hooks.changed()
	return s.constraint(err)
}

// webhookCache is the webhook list (id and events of each) as QueueEvent
// reads it for every event, remembered
//   - where one Store is the only writer of the database
//     (Dialect.OneProcess), forgotten on every write of the table through
//     it (CreateWebhook, DeleteWebhook, CopyTo into it; nothing else
//     writes webhooks);
//   - where instances share the database (PostgreSQL), only while the
//     backend's change listener is connected (SetWebhooksWatched: the
//     database tells every listening instance of each committed write of
//     the table, and the listener calls WebhooksChanged), forgotten on
//     each such notice and whenever the listener connects or loses its
//     connection. A webhook created through another instance takes this
//     one's events from the moment the notice arrives (on one host well
//     under a millisecond after the creating transaction commits).
//
// Most events (a command result on every answer, three per device in a
// profile wave) have no subscriber: each cost a statement on the read
// pool, 3 % of a wave's server CPU samples on SQLite ("Session 12 —
// wave4") and 600 of a 600-request PostgreSQL wave's 3,800 statements
// ("Session 13 — pgwave5", docs/benchmarks.md). Only the look before the
// write is answered from it; the write transaction reads the list again,
// so a delivery is queued exactly for the webhooks stored then (a stale
// list costs a transaction that queues nothing, or misses an event in
// the moment before a creation's notice arrives).
type webhookCache struct {
	mu sync.Mutex
	// gen counts the writes of the table (and the listener's state
	// changes): a list read while one happened may be the old one and is
	// not kept.
	gen   uint64
	valid bool
	list  []webhookEvents
	// watched: the change listener of a shared database is connected
	// (SetWebhooksWatched); without it and without Dialect.OneProcess
	// every event reads the list.
	watched bool
}

// webhookEvents is one webhook's id and the events it takes (empty:
// all).
type webhookEvents struct {
	id     string
	events []string
}

// changed forgets the list: call it after every write of webhooks,
// whether it succeeded or not.
func (c *webhookCache) changed() {
	c.mu.Lock()
	c.gen++
	c.valid, c.list = false, nil
	c.mu.Unlock()
}

// SetWebhooksWatched tells the store whether its backend's change
// listener is connected (true only once it listens: every write of the
// webhooks table committed from then on reaches WebhooksChanged), so
// that QueueEvent may answer "no subscriber" from the remembered list
// (webhookCache). Either way the list is forgotten: a notice may have
// been missed while the listener was away. For backends whose instances
// share the database (not Dialect.OneProcess).
func (s *Store) SetWebhooksWatched(on bool) {
	c := &s.hooks
	c.mu.Lock()
	c.gen++
	c.valid, c.list, c.watched = false, nil, on
	c.mu.Unlock()
}

// WebhooksWatched reports the last SetWebhooksWatched.
func (s *Store) WebhooksWatched() bool {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return s.hooks.watched
}

// WebhooksChanged forgets the remembered webhook list: the backend's
// change listener calls it for each notice of a committed write of the
// table by any instance.
func (s *Store) WebhooksChanged() { s.hooks.changed() }

// takes lists the ids in list that take event.
func takes(list []webhookEvents, event string) []string {
	var ids []string
	for _, w := range list {
		if len(w.events) == 0 || slices.Contains(w.events, event) {
			ids = append(ids, w.id)
		}
	}
	return ids
}

// eventSubscribers is subscribers on the read pool, from the remembered
// list when the dialect allows it (Dialect.OneProcess) or the change
// listener is connected (SetWebhooksWatched).
func (s *Store) eventSubscribers(ctx context.Context, event string) ([]string, error) {
	c := &s.hooks
	c.mu.Lock()
	if !s.d.OneProcess && (!c.watched || !s.listenerFresh()) {
		// Not listening, or not heard from lately (a connection dead
		// without a word loses the notices: ListenerFreshFor).
		c.mu.Unlock()
		return subscribers(ctx, s.r, event)
	}
	if c.valid {
		ids := takes(c.list, event)
		c.mu.Unlock()
		return ids, nil
	}
	gen := c.gen
	c.mu.Unlock()
	list, err := webhookList(ctx, s.r)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.valid, c.list = true, list
	}
	c.mu.Unlock()
	return takes(list, event), nil
}

func scanWebhook(sc scanner) (*store.Webhook, error) {
	var w store.Webhook
	var events string
	var created int64
	if err := sc.Scan(&w.ID, &w.URL, &w.Secret, &events, &created); err != nil {
		return nil, err
	}
	if events != "" {
		w.Events = strings.Split(events, ",")
	}
	w.CreatedAt = fromMicros(created)
	return &w, nil
}

func (s *Store) Webhook(ctx context.Context, id string) (*store.Webhook, error) {
	w, err := scanWebhook(s.r.QueryRowContext(ctx, `SELECT id, url, secret, events, created_at FROM webhooks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("webhook %w", store.ErrNotFound)
	}
	return w, err
}

func (s *Store) Webhooks(ctx context.Context) ([]store.Webhook, error) {
	return collect(ctx, s.r, scanWebhook, `SELECT id, url, secret, events, created_at FROM webhooks ORDER BY created_at, id`)
}

func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
	s.hooks.changed()
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("webhook %w", store.ErrNotFound)
	}
	return nil
}

// QueueEvent first looks for subscribers on the read pool: most events
// (a command result on every answer) have none, and then cost one read
// (none with a remembered list: eventSubscribers), not a write
// transaction, nor the payload's encoding. The payload is made before the
// write transaction, not on the writer.
func (s *Store) QueueEvent(ctx context.Context, event string, payload func() ([]byte, error), now time.Time) error {
	if ids, err := s.eventSubscribers(ctx, event); err != nil || len(ids) == 0 {
		return err
	}
	body, err := payload()
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *Tx) error {
		ids, err := subscribers(ctx, tx, event)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (webhook_id, event, payload, status, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
				id, event, body, store.DeliveryPending, toMicros(now), toMicros(now)); err != nil {
				return err
			}
		}
		return nil
	})
}

// querier reads (a pool or a transaction).
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// subscribers lists the webhooks that take event (all events when their
// list is empty).
func subscribers(ctx context.Context, q querier, event string) ([]string, error) {
	list, err := webhookList(ctx, q)
	if err != nil {
		return nil, err
	}
	return takes(list, event), nil
}

// webhookList reads every webhook's id and events.
func webhookList(ctx context.Context, q querier) ([]webhookEvents, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, events FROM webhooks`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []webhookEvents
	for rows.Next() {
		var w webhookEvents
		var events string
		if err := rows.Scan(&w.id, &events); err != nil {
			return nil, err
		}
		if events != "" {
			w.events = strings.Split(events, ",")
		}
		list = append(list, w)
	}
	return list, rows.Err()
}

const deliveryColumns = `id, webhook_id, event, payload, status, attempts, next_at, last_error, created_at, delivered_at`

func scanDelivery(sc scanner) (*store.Delivery, error) {
	var d store.Delivery
	var next, created, delivered int64
	if err := sc.Scan(&d.ID, &d.WebhookID, &d.Event, &d.Payload, &d.Status, &d.Attempts, &next, &d.LastError, &created, &delivered); err != nil {
		return nil, err
	}
	d.NextAt, d.CreatedAt, d.DeliveredAt = fromMicros(next), fromMicros(created), fromMicros(delivered)
	return &d, nil
}

func (s *Store) DueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.Delivery, error) {
	var out []store.Delivery
	err := s.tx(ctx, func(tx *Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE status = ? AND next_at <= ? ORDER BY next_at, id LIMIT ?`,
			store.DeliveryPending, toMicros(now), limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, *d)
		}
		rows.Close()
		for _, d := range out {
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET next_at = ? WHERE id = ?`, toMicros(now.Add(lease)), d.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

func (s *Store) FinishDelivery(ctx context.Context, id int64, status, lastError string, next time.Time, now time.Time) error {
	delivered := int64(0)
	if status == store.DeliveryDelivered {
		delivered = toMicros(now)
	}
	_, err := s.w.ExecContext(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_error = ?, next_at = ?, delivered_at = ? WHERE id = ?`,
		status, lastError, toMicros(next), delivered, id)
	return err
}

func (s *Store) Deliveries(ctx context.Context, webhookID string, limit int) ([]store.Delivery, error) {
	if limit <= 0 {
		limit = 50
	}
	return collect(ctx, s.r, scanDelivery, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?`, webhookID, limit)
}
