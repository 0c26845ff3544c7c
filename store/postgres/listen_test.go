package postgres

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// waitFor polls cond every millisecond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// openListening is open with its listener listening.
func openListening(t *testing.T, url string) (*sqlstore.Store, *webhookListener) {
	t.Helper()
	s, l, err := open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitFor(t, "the webhook listener", func() bool { return l.listening.Load() > 0 })
	return s, l
}

func hookPayload() ([]byte, error) { return []byte(`{}`), nil }

// deliveries counts the deliveries queued for webhook id.
func deliveries(t *testing.T, s *sqlstore.Store, id string) int {
	t.Helper()
	d, err := s.Deliveries(context.Background(), id, 100)
	if err != nil {
		t.Fatal(err)
	}
	return len(d)
}

// Two instances on one database, each remembering the webhook list: a
// webhook created (or deleted) through one takes (or stops taking) the
// other's events once the database's notice of the write has reached it —
// also a webhook written by hand, not through Pomona (the trigger).
// Without the notice handling (WebhooksChanged not called) instance 2
// keeps answering "no subscriber" and the first check fails.
func TestWebhookListTwoInstances(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s1, _ := openListening(t, url)
	s2, l2 := openListening(t, url)
	now := time.Now().UTC().Truncate(time.Microsecond)

	// Instance 2 remembers that nobody subscribes.
	for range 2 {
		if err := s2.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
			t.Fatal(err)
		}
	}
	seen := l2.notices.Load()
	if err := s1.CreateWebhook(ctx, &store.Webhook{ID: "w1", URL: "https://a.example/hook", Secret: []byte("s"), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "instance 2's notice of the new webhook", func() bool { return l2.notices.Load() > seen })
	if err := s2.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
		t.Fatal(err)
	}
	if n := deliveries(t, s1, "w1"); n != 1 {
		t.Fatalf("a webhook created through instance 1: %d deliveries of instance 2's next event, want 1", n)
	}

	// By hand, with an event filter instance 2's next event does not match.
	seen = l2.notices.Load()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `INSERT INTO webhooks (id, url, secret, events, created_at) VALUES ('w2', 'https://b.example/hook', '\x00', 'device.authenticated', 1)`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "instance 2's notice of the hand-written webhook", func() bool { return l2.notices.Load() > seen })
	for _, ev := range []string{"device.authenticated", "command.result"} {
		if err := s2.QueueEvent(ctx, ev, hookPayload, now); err != nil {
			t.Fatal(err)
		}
	}
	if n1, n2 := deliveries(t, s1, "w1"), deliveries(t, s1, "w2"); n1 != 3 || n2 != 1 {
		t.Fatalf("after a webhook written by hand: %d and %d deliveries, want 3 and 1", n1, n2)
	}

	// Deleted through instance 1: instance 2's next event, even before
	// the notice arrives, queues nothing for it (its write transaction
	// reads the list again: a delivery for w1 would fail its foreign key)
	// and still queues w2's.
	if err := s1.DeleteWebhook(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	if err := s2.QueueEvent(ctx, "device.authenticated", hookPayload, now); err != nil {
		t.Fatal(err)
	}
	if n1, n2 := deliveries(t, s1, "w1"), deliveries(t, s1, "w2"); n1 != 0 || n2 != 2 {
		t.Fatalf("after w1 was deleted: %d and %d deliveries, want 0 and 2", n1, n2)
	}
}

// A listener that loses its connection stops the remembering: a webhook
// written while it is away (its notice lost) takes the next event, and
// the one after it listens again. Without SetWebhooksWatched(false) on
// the error the wait for it times out (and, were it skipped, the event
// during the outage would find the remembered "nobody").
func TestWebhookListenerLosesItsConnection(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s, l := openListening(t, url)
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
		t.Fatal(err) // remembered: nobody subscribes
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A deliberate outage: the listener waits listenRetryMin before it
	// connects again; the write below lands in it (if not, the notice
	// covers it and the test checks less, but nothing false).
	var ok bool
	if err := db.QueryRowContext(ctx, `SELECT pg_terminate_backend($1)`, int64(l.pid.Load())).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate the listener's backend: %v %v", ok, err)
	}
	waitFor(t, "the listener to notice", func() bool { return !s.WebhooksWatched() })
	if _, err := db.ExecContext(ctx, `INSERT INTO webhooks (id, url, secret, events, created_at) VALUES ('w1', 'https://a.example/hook', '\x00', '', 1)`); err != nil {
		t.Fatal(err)
	}
	if err := s.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
		t.Fatal(err)
	}
	if n := deliveries(t, s, "w1"); n != 1 {
		t.Fatalf("an event while the listener is away: %d deliveries, want 1", n)
	}
	waitFor(t, "the listener to listen again", func() bool { return l.listening.Load() >= 2 })
	if err := s.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
		t.Fatal(err)
	}
	if n := deliveries(t, s, "w1"); n != 2 {
		t.Fatalf("an event after the listener is back: %d deliveries, want 2", n)
	}
}

// A list remembered before a lost connection is not used after the
// listener listens again, also when it missed a write's notice (here the
// trigger is off for one insert, as for a notice that never arrived).
// Without the list dropped when the connection is lost or listens again
// (SetWebhooksWatched forgetting it) the last check fails.
func TestWebhookListDroppedOnReconnect(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s, l := openListening(t, url)
	now := time.Now().UTC().Truncate(time.Microsecond)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Write with the listener's own notices cut off: the trigger is off
	// for this one insert (as a write of an instance that lost its
	// notice), then the listener reconnects.
	if _, err := db.ExecContext(ctx, `ALTER TABLE webhooks DISABLE TRIGGER webhooks_notify`); err != nil {
		t.Fatal(err)
	}
	if err := s.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
		t.Fatal(err) // remembered: nobody subscribes
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO webhooks (id, url, secret, events, created_at) VALUES ('w1', 'https://a.example/hook', '\x00', '', 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `ALTER TABLE webhooks ENABLE TRIGGER webhooks_notify`); err != nil {
		t.Fatal(err)
	}
	if err := s.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
		t.Fatal(err)
	}
	if n := deliveries(t, s, "w1"); n != 0 {
		t.Fatalf("no notice: %d deliveries, want 0 (the remembered list; this test's premise)", n)
	}
	var ok bool
	if err := db.QueryRowContext(ctx, `SELECT pg_terminate_backend($1)`, int64(l.pid.Load())).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate the listener's backend: %v %v", ok, err)
	}
	waitFor(t, "the listener to listen again", func() bool { return l.listening.Load() >= 2 })
	if err := s.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
		t.Fatal(err)
	}
	if n := deliveries(t, s, "w1"); n != 1 {
		t.Fatalf("after the listener reconnected: %d deliveries, want 1", n)
	}
}

// TestEventWithoutSubscriberStatements: with the listener listening, an
// event nobody subscribes to costs PostgreSQL one statement the first
// time and none after (it cost one each time before session 13); a new
// webhook's notice makes the next event read the list again and queue
// its delivery.
func TestEventWithoutSubscriberStatements(t *testing.T) {
	ctx := context.Background()
	s, log, l := tracedListeningStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	count := func(what string, want int) {
		t.Helper()
		if got := log.Take(); len(got) != want {
			t.Errorf("%s sent %d statements, want %d:\n%s", what, len(got), want, strings.Join(got, "\n"))
		}
	}
	for i, want := range []int{1, 0, 0} {
		if err := s.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
			t.Fatal(err)
		}
		count([]string{"the first event", "the second event", "the third event"}[i]+" without a subscriber", want)
	}
	seen := l.notices.Load()
	if err := s.CreateWebhook(ctx, &store.Webhook{ID: "w1", URL: "https://a.example/hook", Secret: []byte("s"), Events: []string{"command.result"}, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the notice of the new webhook", func() bool { return l.notices.Load() > seen })
	log.Take()
	if err := s.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
		t.Fatal(err)
	}
	// The list, BEGIN, the list again, the delivery, COMMIT.
	count("an event with a subscriber", 5)
	if err := s.QueueEvent(ctx, "device.authenticated", hookPayload, now); err != nil {
		t.Fatal(err)
	}
	count("an event the remembered subscriber does not take", 0)
	if n := deliveries(t, s, "w1"); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
}

// tracedListeningStore is a migrated store on a fresh database whose
// statements log records (pgtest.TracedDB), with its change listener
// (webhooks, senders) started and listening.
func tracedListeningStore(t *testing.T) (*sqlstore.Store, *pgtest.StatementLog, *webhookListener) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	migrated, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	migrated.Close()
	db, log := pgtest.TracedDB(t, url)
	s := sqlstore.New(Dialect, db, db, "traced")
	l, err := startWebhookListener(url, s)
	if err != nil {
		t.Fatal(err)
	}
	s.OnClose(l.stop)
	t.Cleanup(func() { s.Close() })
	waitFor(t, "the listener", func() bool { return l.listening.Load() > 0 })
	return s, log, l
}
