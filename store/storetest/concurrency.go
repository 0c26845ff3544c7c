package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

// Commands of one channel come out in the order they were enqueued,
// whether single or bulk, interleaved with enqueues to other channels.
func testQueueOrderPerChannel(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, _ := enrolled(t, s)
	ids := []string{"O-a", "O-b", "O-c"}
	for _, id := range ids {
		if err := s.PutChannel(ctx, &store.Channel{ID: id, DeviceID: e1.ID, Kind: "user", EnrollmentUserID: id, CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
	}
	enq := func(uuid string, targets ...string) {
		t.Helper()
		if err := s.Enqueue(ctx, &store.CommandRecord{UUID: uuid, RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: now()}, targets); err != nil {
			t.Fatal(err)
		}
	}
	enq("o1", "O-a")
	enq("o2", "O-b")
	enq("o3", "O-a", "O-b", "O-c")
	enq("o4", "O-c")
	enq("o5", "O-a")
	want := map[string][]string{"O-a": {"o1", "o3", "o5"}, "O-b": {"o2", "o3"}, "O-c": {"o3", "o4"}}
	for id, uuids := range want {
		for _, u := range uuids {
			q, err := s.NextCommand(ctx, e1.ID, id, true, now())
			if err != nil || q.UUID != u {
				t.Fatalf("%s: got %v %v, want %s", id, q, err, u)
			}
			if _, err := s.RecordResult(ctx, e1.ID, id, u, mdm.Acknowledged, nil, now(), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Many writers at once (what a store's group commit batches): every
// write that succeeded is there, in each channel's order; a write that
// failed (an unknown channel) left nothing and did not disturb the
// others.
func testConcurrentWriters(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, _ := enrolled(t, s)
	const writers, each = 16, 6
	for w := 0; w < writers; w++ {
		id := fmt.Sprint("W-", w)
		if err := s.PutChannel(ctx, &store.Channel{ID: id, DeviceID: e1.ID, Kind: "user", EnrollmentUserID: id, CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*2)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("W-", w)
			for i := 0; i < each; i++ {
				uuid := fmt.Sprintf("w%d-%d", w, i)
				if err := s.Enqueue(ctx, &store.CommandRecord{UUID: uuid, RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: now()}, []string{id}); err != nil {
					errs <- fmt.Errorf("%s: %w", uuid, err)
				}
				// A failing write between the good ones.
				bad := fmt.Sprintf("bad%d-%d", w, i)
				if err := s.Enqueue(ctx, &store.CommandRecord{UUID: bad, RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: now()}, []string{id, "NO-SUCH-CHANNEL"}); err == nil {
					errs <- fmt.Errorf("%s: enqueued for an unknown channel", bad)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := 0; w < writers; w++ {
		id := fmt.Sprint("W-", w)
		qs, err := s.QueuedCommands(ctx, id, 100)
		if err != nil || len(qs) != each {
			t.Fatalf("%s: %d rows, %v", id, len(qs), err)
		}
		for i := 0; i < each; i++ {
			// QueuedCommands lists newest first.
			if got, want := qs[each-1-i].UUID, fmt.Sprintf("w%d-%d", w, i); got != want {
				t.Fatalf("%s: position %d is %s, want %s", id, i, got, want)
			}
		}
	}
}
