package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// testQueueFollowsDeletes: a queue row lives only as long as its channel.
// Deleting a user deletes its enrollments, their channels and every queue
// row of those channels, however the rows were queued (one channel, a
// list of channels in one statement, a bulk command from the target
// selection), and no other channel's rows. On PostgreSQL this is the
// cascade trigger of migration 0023 (before it, the foreign key's ON
// DELETE CASCADE); QueuedCommands does not join channels, so a row left
// behind shows here.
func testQueueFollowsDeletes(t *testing.T, s store.Store) {
	ctx := context.Background()
	fx := newTargetFixture(t, s)
	rec := func(uuid string) *store.CommandRecord {
		return &store.CommandRecord{UUID: uuid, RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: now()}
	}
	// A bulk from the selection: TGT-C1 and TGT-C2 (u1).
	n, _, err := s.EnqueueTargets(ctx, nil, rec("QR-bulk"), store.TargetFilter{TenantID: fx.ta.ID},
		func(map[string]int) ([]string, []byte, error) { return []string{"iOS", "macOS"}, nil, nil })
	if err != nil || n != 2 {
		t.Fatalf("EnqueueTargets: %d %v", n, err)
	}
	// A list of 101 channels in one statement: 100 user channels of u1's
	// Mac and TGT-C3 (u2).
	var list []string
	for i := 0; i < 100; i++ {
		ch := fmt.Sprint("QR-U-", i)
		if err := s.PutChannel(ctx, &store.Channel{ID: ch, DeviceID: fx.e2.ID, Kind: "user", EnrollmentUserID: ch, CreatedAt: now(), UpdatedAt: now()}); err != nil {
			t.Fatal(err)
		}
		list = append(list, ch)
	}
	if err := s.Enqueue(ctx, rec("QR-list"), append(append([]string{}, list...), "TGT-C3")); err != nil {
		t.Fatal(err)
	}
	// Single channels: u1's and other users'.
	for uuid, ch := range map[string]string{"QR-one1": "TGT-C1", "QR-one3": "TGT-C3", "QR-one5": "TGT-C5"} {
		if err := s.Enqueue(ctx, rec(uuid), []string{ch}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(ch string) int {
		t.Helper()
		qs, err := s.QueuedCommands(ctx, ch, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(qs)
	}
	for ch, want := range map[string]int{"TGT-C1": 2, "TGT-C2": 1, "QR-U-0": 1, "QR-U-99": 1, "TGT-C3": 2, "TGT-C5": 1} {
		if got := count(ch); got != want {
			t.Fatalf("before: %s has %d queued, want %d", ch, got, want)
		}
	}
	if err := s.DeleteUser(ctx, fx.u1.ID, store.Ending{Reason: "test", At: now()}); err != nil {
		t.Fatal(err)
	}
	for ch, want := range map[string]int{"TGT-C1": 0, "TGT-C2": 0, "QR-U-0": 0, "QR-U-50": 0, "QR-U-99": 0, "TGT-C3": 2, "TGT-C5": 1} {
		if got := count(ch); got != want {
			t.Fatalf("after deleting the user: %s has %d queued, want %d", ch, got, want)
		}
	}
	// The channel ids are free again: a new channel with one of them
	// starts with an empty queue.
	e := mustEnrollment(t, s, fx.ta.ID, fx.u2.ID, nil, time.Time{})
	if err := s.PutChannel(ctx, &store.Channel{ID: "TGT-C1", DeviceID: e.ID, Kind: "device", CreatedAt: now(), UpdatedAt: now()}); err != nil {
		t.Fatal(err)
	}
	if got := count("TGT-C1"); got != 0 {
		t.Fatalf("a new channel TGT-C1 inherited %d queued commands", got)
	}
}
