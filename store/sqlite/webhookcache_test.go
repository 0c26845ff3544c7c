package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// An event nobody subscribes to (a command result on every answer, three
// per device in a profile wave) runs no statement once the store has read
// the webhook list (Dialect.OneProcess: it remembers it); a webhook added
// or deleted through the store takes, or stops taking, the very next
// event. Before Session 12 every event read the list on the read pool.
func TestQueueEventRemembersTheWebhooks(t *testing.T) {
	ctx := context.Background()
	s, log := countedStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	payloads := 0
	payload := func() ([]byte, error) { payloads++; return []byte(`{}`), nil }
	queue := func(event string) []string {
		t.Helper()
		if err := s.QueueEvent(ctx, event, payload, now); err != nil {
			t.Fatal(err)
		}
		runs, _ := log.take()
		return runs
	}
	queue("command.result") // reads the (empty) list once
	for i := range 3 {
		if runs := queue("command.result"); len(runs) != 0 {
			t.Fatalf("event %d without a webhook ran %d statements, want none: %q", i, len(runs), runs)
		}
	}
	if err := s.CreateWebhook(ctx, &store.Webhook{ID: "w1", URL: "https://a.example/hook", Secret: []byte("sealed"),
		Events: []string{"profile.installed"}, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	queue("command.result")
	if runs := queue("command.result"); len(runs) != 0 || payloads != 0 {
		t.Fatalf("an event the webhook does not take: %d statements %q, %d payloads made; want none", len(runs), runs, payloads)
	}
	queue("profile.installed")
	if payloads != 1 {
		t.Fatalf("the new webhook's event made %d payloads, want 1", payloads)
	}
	due := func() int {
		t.Helper()
		d, err := s.DueDeliveries(ctx, now.Add(time.Minute), time.Minute, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(d)
	}
	if n := due(); n != 1 {
		t.Fatalf("deliveries after the webhook's event: %d, want 1", n)
	}
	if err := s.DeleteWebhook(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	queue("profile.installed")
	if payloads != 1 {
		t.Fatalf("an event after the webhook was deleted made a payload (%d)", payloads)
	}
	if runs := queue("profile.installed"); len(runs) != 0 {
		t.Fatalf("an event after the deletion, list read again: %d statements %q, want none", len(runs), runs)
	}
}
