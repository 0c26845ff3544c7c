package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

type queue struct{ events []Envelope }

func (q *queue) QueueEvent(_ context.Context, event string, payload func() ([]byte, error), _ time.Time) error {
	body, err := payload()
	if err != nil {
		return err
	}
	var e Envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return err
	}
	q.events = append(q.events, e)
	return nil
}

func TestDeviceEventMapping(t *testing.T) {
	q := &queue{}
	p := &Publisher{Store: q, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
	ctx := context.Background()
	e := &store.Enrollment{ID: "dev_1", AppleEnrollmentID: "A1", TenantID: "t1", UserID: "u1", Platform: "iOS"}
	for _, kind := range []string{"authenticate", "token-update", "checkout", "result", "identity-expired", "unknown-result", "other"} {
		p.DeviceEvent(ctx, kind, e, "ch_1", "cmd-1", "DeviceInformation", "Acknowledged")
	}
	var got []string
	for _, ev := range q.events {
		got = append(got, ev.Type)
	}
	want := []string{EventAuthenticated, EventTokenUpdate, EventCheckedOut, EventCommandResult, EventIdentityExpired}
	if !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v (unknown-result and other kinds are not events)", got, want)
	}
	for _, ev := range q.events {
		if !slices.Contains(Events, ev.Type) {
			t.Errorf("%s is not in Events", ev.Type)
		}
		d := ev.Data.(map[string]any)
		if d["device"] != "dev_1" || d["enrollment_id"] != "A1" || d["channel"] != "ch_1" {
			t.Errorf("%s data = %v", ev.Type, d)
		}
		if _, has := d["command_uuid"]; has != (ev.Type == EventCommandResult) {
			t.Errorf("%s: command_uuid present = %v", ev.Type, has)
		}
	}

	q.events = nil
	r := &store.Renewal{DeviceID: "dev_1", Serial: "ab", CommandUUID: "cmd-2", Attempts: 1}
	p.RenewalChanged(ctx, "queued", r, "")
	p.RenewalChanged(ctx, "failed", r, "no SCEP in time")
	p.RenewalChanged(ctx, "done", r, "")
	if len(q.events) != 2 || q.events[0].Type != EventRenewalQueued || q.events[1].Type != EventRenewalFailed ||
		q.events[1].Data.(map[string]any)["error"] != "no SCEP in time" {
		t.Fatalf("renewal events = %+v", q.events)
	}
}

// nobody is a store where no webhook takes any event.
type nobody struct{}

func (nobody) QueueEvent(context.Context, string, func() ([]byte, error), time.Time) error {
	return nil
}

// A device event nobody subscribed to builds nothing: its data map is
// built only when a webhook takes the event (every device result comes
// here). On the base the map cost 16 allocations per result event.
func TestDeviceEventUnsubscribedAllocations(t *testing.T) {
	p := &Publisher{Store: nobody{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
	ctx := context.Background()
	e := &store.Enrollment{ID: "dev_1", AppleEnrollmentID: "A1", TenantID: "t1", UserID: "u1", Platform: "iOS"}
	allocs := testing.AllocsPerRun(100, func() {
		p.DeviceEvent(ctx, "result", e, "ch_1", "cmd-1", "DeviceInformation", "Acknowledged")
	})
	t.Logf("%.0f allocations", allocs)
	if allocs > 3 {
		t.Fatalf("an unsubscribed result event: %.0f allocations, want at most 3 (two closures, the context)", allocs)
	}
}
