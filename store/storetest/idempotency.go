package storetest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// testIdempotentEnqueue: a key is recorded with the command it queued;
// the same key again queues nothing and returns the first record, across
// credentials keys are separate, and an expired key can be used again.
func testIdempotentEnqueue(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, _ := enrolled(t, s)
	// One device channel and one user channel: an enrollment has one
	// device channel at most.
	for _, ch := range []store.Channel{{ID: "IDEM-1", Kind: "device"}, {ID: "IDEM-2", Kind: "user", EnrollmentUserID: "IDEM-USER"}} {
		ch.DeviceID, ch.CreatedAt, ch.UpdatedAt = e1.ID, now(), now()
		if err := s.PutChannel(ctx, &ch); err != nil {
			t.Fatal(err)
		}
	}
	t0 := now()
	key := func(principal, k, fp, resp string, at time.Time) *store.IdempotencyKey {
		return &store.IdempotencyKey{Principal: principal, Key: k, Fingerprint: fp, Response: []byte(resp), CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour)}
	}
	cmd := func(uuid string) *store.CommandRecord {
		return &store.CommandRecord{UUID: uuid, RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: t0}
	}
	queued := func(channel string) []string {
		t.Helper()
		qs, err := s.QueuedCommands(ctx, channel, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, q := range qs {
			out = append(out, q.UUID)
		}
		sort.Strings(out)
		return out
	}

	_, err := s.IdempotencyKey(ctx, "key:a", "k1", t0)
	wantErr(t, err, store.ErrNotFound)
	if ex, err := s.EnqueueOnce(ctx, key("key:a", "k1", "fp1", `{"command_uuid":"C1"}`, t0), cmd("C1"), []string{"IDEM-1", "IDEM-2"}); err != nil || ex != nil {
		t.Fatalf("first: %+v %v", ex, err)
	}
	got, err := s.IdempotencyKey(ctx, "key:a", "k1", t0.Add(time.Hour))
	if err != nil || got.Fingerprint != "fp1" || string(got.Response) != `{"command_uuid":"C1"}` || !got.CreatedAt.Equal(t0) || !got.ExpiresAt.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("record: %+v %v", got, err)
	}
	// The same key again (another request body even): nothing queued, the
	// first record back.
	ex, err := s.EnqueueOnce(ctx, key("key:a", "k1", "fp2", `{"command_uuid":"C2"}`, t0.Add(time.Minute)), cmd("C2"), []string{"IDEM-1"})
	if err != nil || ex == nil || ex.Fingerprint != "fp1" || string(ex.Response) != `{"command_uuid":"C1"}` {
		t.Fatalf("repeat: %+v %v", ex, err)
	}
	if q := queued("IDEM-1"); fmt.Sprint(q) != "[C1]" {
		t.Fatalf("queued after the repeat: %v", q)
	}
	// Keys are scoped to the credential.
	if ex, err := s.EnqueueOnce(ctx, key("key:b", "k1", "fp1", `{"command_uuid":"C3"}`, t0), cmd("C3"), []string{"IDEM-1"}); err != nil || ex != nil {
		t.Fatalf("other credential: %+v %v", ex, err)
	}
	// A failed enqueue records no key.
	if _, err := s.EnqueueOnce(ctx, key("key:a", "k2", "fp", `{}`, t0), cmd("C4"), []string{"IDEM-1", "NO-SUCH-CHANNEL"}); err == nil {
		t.Fatal("enqueued for an unknown channel")
	}
	_, err = s.IdempotencyKey(ctx, "key:a", "k2", t0)
	wantErr(t, err, store.ErrNotFound)
	// Expired: not found, and the key can be used again.
	later := t0.Add(25 * time.Hour)
	_, err = s.IdempotencyKey(ctx, "key:a", "k1", later)
	wantErr(t, err, store.ErrNotFound)
	if ex, err := s.EnqueueOnce(ctx, key("key:a", "k1", "fp5", `{"command_uuid":"C5"}`, later), cmd("C5"), []string{"IDEM-2"}); err != nil || ex != nil {
		t.Fatalf("after expiry: %+v %v", ex, err)
	}
	if q := queued("IDEM-2"); fmt.Sprint(q) != "[C1 C5]" {
		t.Fatalf("queued: %v", q)
	}
	// Purge removes what has expired, nothing else.
	if n, err := s.PurgeIdempotencyKeys(ctx, t0.Add(24*time.Hour)); err != nil || n != 1 { // key:b's k1
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, err := s.IdempotencyKey(ctx, "key:a", "k1", later); err != nil {
		t.Fatalf("purge removed a live key: %v", err)
	}
}

// testIdempotentEnqueueRace: concurrent requests with one key queue one
// command; every other one gets the winner's record.
func testIdempotentEnqueueRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, _ := enrolled(t, s)
	if err := s.PutChannel(ctx, &store.Channel{ID: "RACE-1", DeviceID: e1.ID, Kind: "device", CreatedAt: now(), UpdatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners, replays := 0, map[string]int{}
	t0 := now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uuid := fmt.Sprint("RACE-C", i)
			k := &store.IdempotencyKey{Principal: "key:a", Key: "same", Fingerprint: "fp", Response: []byte(uuid), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			ex, err := s.EnqueueOnce(ctx, k, &store.CommandRecord{UUID: uuid, RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: t0}, []string{"RACE-1"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case ex == nil:
				winners++
			default:
				replays[string(ex.Response)]++
			}
		}()
	}
	wg.Wait()
	qs, err := s.QueuedCommands(ctx, "RACE-1", 100)
	if err != nil || len(qs) != 1 || winners != 1 || len(replays) != 1 || replays[qs[0].UUID] != n-1 {
		t.Fatalf("queued %d (%v), winners %d, replays %v", len(qs), err, winners, replays)
	}
}
